"""The resolve route's path type takes every id the server hands out: a finding's (its code
and a digest) and a concurrent edit's (``cw:``)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt_server.core.overwrites import finding_id
from crdt_server.documents.findings import FINDING_KINDS
from crdt_server.documents.model import Conflict
from crdt_server.features.conflicts.extension import conflict_id
from crdt_server.features.conflicts.routes import ConflictId

pytestmark = pytest.mark.timeout(60)
IDS = st.tuples(st.integers(0, 2**53), st.integers(0, 2**32))


CODES = sorted(code for kind in FINDING_KINDS for code in kind.codes)


@given(code=st.sampled_from(CODES), paths=st.lists(st.text(), max_size=3))
def test_a_finding_id_is_a_conflict_id(code: str, paths: list[str]) -> None:
    key = conflict_id(Conflict(code, tuple(paths), "a message"))
    assert msgspec.convert(key, ConflictId) == key


@given(kind=st.text(max_size=20), a=IDS, b=st.none() | IDS)
def test_a_concurrent_edit_id_is_a_conflict_id(
    kind: str, a: tuple[int, int], b: tuple[int, int] | None
) -> None:
    key = finding_id(kind, a, b)
    assert msgspec.convert(key, ConflictId) == key


@pytest.mark.parametrize("key", ["", "cw:0123", "seating.x:0123456789AB", "a:b:0123456789ab"])
def test_other_strings_are_not(key: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(key, ConflictId)
