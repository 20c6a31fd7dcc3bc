"""Presence squatting (issue 15, item 11): a client id stays bound to the principal that
introduced it, after its connection left, for a bounded time and number of ids."""

from __future__ import annotations

import json

import pytest

from crdt_server.codec.awareness import AwarenessEntry
from crdt_server.core.presence import AwarenessRegistry

pytestmark = pytest.mark.timeout(10)


def entry(client_id: int, clock: int, name: str | None) -> AwarenessEntry:
    return AwarenessEntry(client_id, clock, json.dumps(None if name is None else {"name": name}))


def test_a_departed_users_client_id_cannot_be_taken_by_another_principal() -> None:
    registry = AwarenessRegistry()
    alice, mallory = object(), object()
    registry.apply(alice, "alice", [entry(7, 1, "alice")])
    assert [e.client_id for e in registry.remove_owner(alice)] == [7]
    assert registry.apply(mallory, "mallory", [entry(7, 9, "alice (really mallory)")]) == []
    assert registry.rejected == 1
    assert registry.states() == []
    # Alice reconnecting with her client id gets it back.
    back = entry(7, 3, "alice")
    assert registry.apply(object(), "alice", [back]) == [back]


def test_an_expired_presence_stays_bound_too() -> None:
    registry = AwarenessRegistry()
    remote = ("remote", "p1")
    registry.apply(remote, "process:p1", [entry(5, 1, "bob")])
    assert registry.expire(float("inf"), lambda owner: owner == remote)
    assert registry.apply(object(), "mallory", [entry(5, 2, "bob")]) == []


def test_bindings_are_bounded_in_time_and_number() -> None:
    registry = AwarenessRegistry(binding_seconds=0.0, binding_entries=2)
    conn = object()
    registry.apply(conn, "alice", [entry(1, 1, "a")])
    registry.remove_owner(conn)
    # Past the binding time anyone may use the id.
    claim = entry(1, 2, "m")
    assert registry.apply(object(), "mallory", [claim]) == [claim]

    sized = AwarenessRegistry(binding_entries=2)
    owner = object()
    sized.apply(owner, "alice", [entry(i, 1, "a") for i in (1, 2, 3)])
    sized.remove_owner(owner)
    # Only the two newest bindings are kept: id 1 (the oldest) is free, 2 and 3 are not.
    assert len(sized.apply(object(), "mallory", [entry(i, 2, "m") for i in (1, 2, 3)])) == 1
