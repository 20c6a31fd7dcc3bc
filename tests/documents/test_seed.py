"""Deterministic seeding: twice, or on several processes at once, never duplicates content."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Map

from crdt_server.documents import DOCUMENT_KINDS, SCHEMA_VERSION, DocumentError, seed, to_json
from crdt_server.documents.schema import ROOTS


def entries(doc: Doc[Any], kind: str) -> dict[str, int]:
    """How many entries each root map of a ``kind`` document holds."""
    return {name: len(doc.get(name, type=Map)) for name in ("meta", *ROOTS[kind])}


def seeded(kind: str, wedding_id: str = "w42") -> Doc[Any]:
    doc: Doc[Any] = Doc()
    assert seed(doc, kind, wedding_id) is True
    return doc


@pytest.mark.parametrize("kind", DOCUMENT_KINDS)
def test_seed_writes_the_meta_map(kind: str) -> None:
    doc = seeded(kind)
    assert doc.get("meta", type=Map).to_py() == {
        "schema": SCHEMA_VERSION,
        "kind": kind,
        "wedding_id": "w42",
    }
    assert to_json(doc, kind)["wedding_id"] == "w42"


@pytest.mark.parametrize("kind", DOCUMENT_KINDS)
def test_seeding_twice_writes_nothing_the_second_time(kind: str) -> None:
    doc = seeded(kind)
    state = doc.get_state()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    assert seed(doc, kind, "w42") is False
    assert updates == []
    assert doc.get_state() == state


@pytest.mark.parametrize("kind", DOCUMENT_KINDS)
def test_replicas_seeded_independently_merge_into_one_seeding(kind: str) -> None:
    once = seeded(kind)
    replicas = [seeded(kind) for _ in range(3)]
    assert len({replica.client_id for replica in replicas}) == 3
    for target in replicas:
        for source in replicas:
            target.apply_update(source.get_update())
    for replica in replicas:
        assert replica.get("meta", type=Map).to_py() == once.get("meta", type=Map).to_py()
        assert (
            entries(replica, kind)
            == entries(once, kind)
            == {
                "meta": 3,
                **dict.fromkeys(ROOTS[kind], 0),
            }
        )
        assert to_json(replica, kind) == to_json(once, kind)


def test_a_replica_seeded_after_merging_a_seeded_one_writes_nothing() -> None:
    first = seeded("guests")
    second: Doc[Any] = Doc()
    second.apply_update(first.get_update())
    assert seed(second, "guests", "w42") is False


@pytest.mark.parametrize(
    ("kind", "wedding_id", "path"),
    [
        ("guests", "w7", "meta/wedding_id"),
        ("seating", "w42", "meta/kind"),
        ("menu", "w42", "kind"),
        ("guests", "", "wedding_id"),
        ("guests", "_w", "wedding_id"),
        ("guests", "w" * 65, "wedding_id"),
        ("guests", "w/1", "wedding_id"),
    ],
)
def test_seed_refuses(kind: str, wedding_id: str, path: str) -> None:
    doc = seeded("guests")
    state = doc.get_state()
    with pytest.raises(DocumentError) as info:
        seed(doc, kind, wedding_id)
    assert info.value.path == path
    assert doc.get_state() == state


def test_seed_refuses_another_schema_version() -> None:
    doc: Doc[Any] = Doc()
    doc.get("meta", type=Map)["schema"] = SCHEMA_VERSION + 1
    with pytest.raises(DocumentError) as info:
        seed(doc, "guests", "w42")
    assert info.value.path == "meta/schema"
