"""Tests for crdt_server.codec.updates: the structural checker run before pycrdt sees an update."""

from __future__ import annotations

import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, XmlElement, XmlFragment, XmlText

from crdt_server.codec.updates import (
    OverItemLimit,
    UpdateError,
    UpdateSummary,
    decode_state_vector,
    inspect_update,
    integrable,
    pending_after,
)
from tests.tier import examples

CLIENT = 2_349_812_345  # a typical 32-bit random Yjs client id (5-byte varuint)


def vu(n: int) -> bytes:
    """lib0 varuint encoding (test helper)."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def vs(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return vu(len(raw)) + raw


def one_item(content: bytes, info: int = 0x08, client: int = 1, clock: int = 0) -> bytes:
    """An update with one root-level item on root type "t" and an empty delete set."""
    return (
        b"\x01\x01" + vu(client) + vu(clock) + bytes([info]) + b"\x01" + vs("t") + content + b"\x00"
    )


# --- real updates produced by pycrdt ---------------------------------------------------


def _text_doc(doc: Doc[Any]) -> None:
    text = doc.get("text", type=Text)
    text += "hello wörld 😀 𝄞!"
    text.insert(5, ",")
    del text[0:2]
    text.insert(3, "🎉")


def _formatted_text(doc: Doc[Any]) -> None:
    text = doc.get("text", type=Text)
    text += "some rich text"
    text.format(0, 4, {"bold": True})
    text.insert(4, "!", attrs={"italic": True, "color": "#f00"})
    text.insert_embed(2, {"image": "x.png"})
    text.format(1, 6, {"bold": None})


def _array_doc(doc: Doc[Any]) -> None:
    array = doc.get("array", type=Array)
    array.extend([1, -2, 3.5, "s", "😀", None, True, False, b"\x00\xff", 2**40, -(2**52)])
    array.append([1, [2, [3, ["deep"]]]])
    array.append({"k": {"j": [1, {"x": None}]}, "": "empty key"})
    del array[1:3]
    array.insert(0, Text("nested text"))
    array.insert(1, Map({"a": Array([1, 2])}))


def _map_doc(doc: Doc[Any]) -> None:
    root = doc.get("map", type=Map)
    root["n"] = 1
    root["s"] = "x"
    root["n"] = 2
    del root["s"]
    root["nested"] = Map({"inner": Map({"t": Text("hi")}), "arr": Array(["a"])})
    root["bytes"] = b"abc"


def _xml_doc(doc: Doc[Any]) -> None:
    frag = doc.get("xml", type=XmlFragment)
    para = frag.children.append(XmlElement("p", {"class": "lead"}, [XmlText("hello")]))
    para.children.append(XmlElement("b", None, [XmlText("bold")]))
    frag.children.append(XmlText("tail"))
    para.attributes["id"] = "p1"


def _subdoc(doc: Doc[Any]) -> None:
    doc.get("map", type=Map)["sub"] = Doc()


def _big_text(doc: Doc[Any]) -> None:
    text = doc.get("text", type=Text)
    for i in range(200):
        text.insert(len(text) // 2, f"chunk {i} é😀 ")
    del text[10:400]


EDITS: dict[str, Callable[[Doc[Any]], None]] = {
    "text": _text_doc,
    "formatted": _formatted_text,
    "array": _array_doc,
    "map": _map_doc,
    "xml": _xml_doc,
    "subdoc": _subdoc,
    "big_text": _big_text,
}


def full_update(edit: Callable[[Doc[Any]], None], client_id: int = CLIENT) -> bytes:
    doc: Doc[Any] = Doc(client_id=client_id)
    edit(doc)
    return doc.get_update()


def state_of(doc: Doc[Any]) -> dict[int, int]:
    return decode_state_vector(doc.get_state())


def ends(summary: UpdateSummary) -> dict[int, int]:
    return {client: end for client, (_, end) in summary.structs.items()}


REAL_UPDATES = [full_update(edit) for edit in EDITS.values()]


@pytest.mark.parametrize("name", sorted(EDITS))
def test_real_update_matches_pycrdt_state(name: str) -> None:
    update = full_update(EDITS[name])
    summary = inspect_update(update)
    assert not summary.is_empty
    assert summary.struct_count > 0
    assert all(start == 0 for start, _ in summary.structs.values())
    assert ends(summary) == decode_state_vector(pycrdt.get_state(update))
    doc: Doc[Any] = Doc()
    doc.apply_update(update)
    assert not pending_after(summary, state_of(doc))


def test_utf16_lengths() -> None:
    doc: Doc[Any] = Doc(client_id=5)
    doc.get("t", type=Text).insert(0, "a😀é𝄞")  # 1 + 2 + 1 + 2 UTF-16 code units
    assert inspect_update(doc.get_update()).structs == {5: (0, 6)}


def test_every_transaction_update() -> None:
    """Incremental updates (as y-websocket sends them) inspect OK and cover the new clocks."""
    doc: Doc[Any] = Doc(client_id=CLIENT)
    seen: list[bytes] = []
    doc.observe(lambda event: seen.append(event.update))
    for edit in EDITS.values():
        edit(doc)
    replica: Doc[Any] = Doc()
    for update in seen:
        before = state_of(replica).get(CLIENT, 0)
        summary = inspect_update(update)
        if CLIENT in summary.structs:
            assert summary.structs[CLIENT][0] == before
        replica.apply_update(update)
        assert not pending_after(summary, state_of(replica))
    assert state_of(replica) == state_of(doc)


def test_missing_predecessor_is_pending() -> None:
    source: Doc[Any] = Doc(client_id=11)
    text = source.get("t", type=Text)
    text += "first"
    first = source.get_update()
    checkpoint = source.get_state()
    text.insert(2, "second")
    del text[0]
    second = source.get_update(checkpoint)

    summary = inspect_update(second)
    assert summary.structs == {11: (5, 11)}
    assert summary.deletes == {11: 1}
    assert summary.needs == {11: 5}  # its structs follow on from clock 5
    assert not integrable(summary, {})
    assert not integrable(summary, {11: 4})
    assert integrable(summary, {11: 5})
    assert integrable(summary, {11: 11})  # already known: yrs skips what it has
    assert integrable(inspect_update(first), {})
    target: Doc[Any] = Doc()
    target.apply_update(second)
    assert pending_after(summary, state_of(target))
    target.apply_update(first)
    assert not pending_after(summary, state_of(target))
    assert not pending_after(inspect_update(first), state_of(target))


def test_delete_only_update_pending_until_target_arrives() -> None:
    source: Doc[Any] = Doc(client_id=12)
    text = source.get("t", type=Text)
    text += "abc"
    insert = source.get_update()
    checkpoint = source.get_state()
    del text[1]
    delete = source.get_update(checkpoint)
    summary = inspect_update(delete)
    assert summary.structs == {} and summary.deletes == {12: 2}
    assert not summary.is_empty
    assert pending_after(summary, {})
    assert not pending_after(summary, {12: 3})
    assert summary.refs == {12: 2}  # the deleted content must be there
    assert not integrable(summary, {})
    assert not integrable(summary, {12: 1})
    assert integrable(summary, {12: 2})
    target: Doc[Any] = Doc()
    target.apply_update(insert)
    assert not pending_after(summary, state_of(target))


def test_merged_update_with_gap() -> None:
    doc: Doc[Any] = Doc(client_id=7)
    text = doc.get("t", type=Text)
    text += "ab"
    first = doc.get_update()
    text += "cd"
    skip_from = doc.get_state()
    text += "ef"
    merged = pycrdt.merge_updates(first, doc.get_update(skip_from))
    summary = inspect_update(merged)
    assert summary.structs == {7: (0, 6)}
    assert summary.needs == {7: 4}  # "ef" follows a Skip over "cd"
    assert not integrable(summary, {})
    assert not integrable(summary, {7: 2})
    assert integrable(summary, {7: 4})
    target: Doc[Any] = Doc()
    target.apply_update(merged)
    assert pending_after(summary, state_of(target))


def test_empty_updates() -> None:
    for empty in (b"\x00\x00", Doc().get_update(), b"\x01\x00\x05\x00\x00"):
        summary = inspect_update(empty)
        assert summary.is_empty and summary.structs == {} and summary.deletes == {}
        assert not pending_after(summary, {})
    assert inspect_update(b"\x00\x01\x03\x01\x00\x00").is_empty  # zero-length delete range


def test_accepts_bytearray_and_memoryview() -> None:
    update = REAL_UPDATES[0]
    assert inspect_update(bytearray(update)) == inspect_update(memoryview(update))  # type: ignore[arg-type]


def test_state_vector_round_trip() -> None:
    a: Doc[Any] = Doc(client_id=1)
    b: Doc[Any] = Doc(client_id=2**53 - 1)
    a.get("t", type=Text).insert(0, "x" * 300)
    b.get("t", type=Text).insert(0, "😀")
    a.apply_update(b.get_update())
    assert state_of(a) == {1: 300, 2**53 - 1: 2}
    assert decode_state_vector(Doc().get_state()) == {}
    state = {3: 0, 2**32: 0xFFFFFFFF, 17: 5}
    encoded = vu(len(state)) + b"".join(vu(c) + vu(k) for c, k in state.items())
    assert decode_state_vector(encoded) == state


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x01",
        b"\x01\x01\x01\x00" + vu(2**32),  # clock beyond u32
        b"\x02\x01\x00\x01\x00",  # duplicate client
        b"\x00\x00",  # trailing byte
        b"\x05",  # count cannot fit
        b"\x01" + vu(2**53) + b"\x00",  # client beyond 2**53 - 1
    ],
)
def test_bad_state_vectors(data: bytes) -> None:
    with pytest.raises(UpdateError):
        decode_state_vector(data)


# --- hand-built encodings --------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "structs"),
    [
        (one_item(b"\x00", info=0x04), {}),  # empty string: yrs drops it
        (one_item(b"\x00", info=0x08), {}),  # zero-length Any content
        (one_item(b"\x03", info=0x01), {1: (0, 3)}),  # Deleted content
        (one_item(b"\x03" + vs("h1"), info=0x07), {1: (0, 1)}),  # XmlElement type
        (one_item(b"\x06", info=0x07), {1: (0, 1)}),  # XmlText type
        (one_item(vs(b"\x00\x01"), info=0x03), {1: (0, 1)}),  # Binary
        (one_item(vs("{}"), info=0x05), {1: (0, 1)}),  # Embed
        (one_item(vs("bold") + vs("true"), info=0x06), {1: (0, 1)}),  # Format
        (one_item(vs("guid") + b"\x76\x00", info=0x09), {1: (0, 1)}),  # Doc
        (one_item(vs("😀"), info=0x04, clock=0xFFFFFFFD), {1: (0xFFFFFFFD, 0xFFFFFFFF)}),
        (b"\x01\x02\x01\x00\x00\x02\x0a\x03\x00", {1: (0, 2)}),  # GC then trailing Skip
        (one_item(b"\x02\x7d\xbf\x7f\x7d\x00", info=0x08), {1: (0, 2)}),  # varints
    ],
)
def test_hand_built_accepted(data: bytes, structs: dict[int, tuple[int, int]]) -> None:
    assert inspect_update(data).structs == structs


def nested_any(depth: int) -> bytes:
    return b"\x75\x01" * depth + b"\x7e"


HUGE = vu(2**53 - 1)

REJECTED: dict[str, bytes] = {
    "empty input": b"",
    "2**31 clients": vu(2**31) + b"\x00",
    "2**40 structs": b"\x01" + vu(2**40) + b"\x01\x00\x00",
    "structs past end": b"\x01\x05\x01\x00\x00\x01",
    "huge string": one_item(HUGE + b"abc", info=0x04),
    "huge parent name": b"\x01\x01\x01\x00\x04\x01" + HUGE,
    "huge Any content": one_item(HUGE + b"\x7e", info=0x08),
    "huge Any array": one_item(b"\x01\x75" + HUGE, info=0x08),
    "huge Any object": one_item(b"\x01\x76" + vu(2**31), info=0x08),
    "huge binary": one_item(vu(2**31) + b"\x00", info=0x03),
    "huge JSON": one_item(HUGE + b"\x01a", info=0x02),
    "deep Any": one_item(b"\x01" + nested_any(10_000), info=0x08),
    "65 deep Any": one_item(b"\x01" + nested_any(65), info=0x08),
    "deep Any object": one_item(b"\x01" + b"\x76\x01\x01k" * 100 + b"\x7e", info=0x08),
    "huge delete-set clients": b"\x00" + vu(2**31),
    "huge delete ranges": b"\x00\x01\x01" + vu(2**40) + b"\x00\x01",
    "9-byte varuint": b"\x80" * 8 + b"\x00\x00",
    "varuint beyond 2**53": vu(2**53) + b"\x00",
    "9-byte varint": one_item(b"\x01\x7d" + b"\xff" * 8 + b"\x00", info=0x08),
    "truncated float64": one_item(b"\x01\x7b\x00\x00", info=0x08)[:-1],
    "unknown Any tag": one_item(b"\x01\x73", info=0x08),
    "Any tag 200": one_item(b"\x01\xc8", info=0x08),
    "invalid UTF-8": one_item(vs(b"\xff"), info=0x04),
    "encoded surrogate": one_item(vs(b"\xed\xa0\x80"), info=0x04),
    "overlong UTF-8": one_item(vs(b"\xc0\xaf"), info=0x04),
    "truncated UTF-8": one_item(vs(b"\xf0\x9f\x98"), info=0x04),
    "invalid UTF-8 key": one_item(b"\x01\x76\x01" + vs(b"\x80") + b"\x7e", info=0x08),
    "legacy JSON content": one_item(b"\x01" + vs("1"), info=0x02),
    "XmlHook": one_item(b"\x05" + vs("hook"), info=0x07),
    "weak link type": one_item(b"\x07", info=0x07),
    "subdoc type ref": one_item(b"\x09", info=0x07),
    "non-minimal type ref": one_item(b"\x80\x00", info=0x07),
    "content ref 11": one_item(b"", info=0x0B),
    "content ref 20": one_item(vs("x"), info=0x14),
    "content ref 31": one_item(b"", info=0x1F),
    "GC with origin bit": b"\x01\x01\x01\x00\x80\x01\x00",
    "GC length 0": b"\x01\x01\x01\x00\x00\x00\x00",
    "Skip length 0": b"\x01\x01\x01\x00\x0a\x00\x00",
    "parent info 2": b"\x01\x01\x01\x00\x04\x02\x01\x00\x01a\x00",
    "duplicate client": b"\x02" + b"\x01\x01\x00\x00\x01" * 2 + b"\x00",
    "duplicate delete-set client": b"\x00\x02" + b"\x01\x01\x00\x01" * 2,
    "clock beyond u32": one_item(vs("a"), info=0x04, clock=2**32),
    "clock + length beyond u32": one_item(vs("ab"), info=0x04, clock=0xFFFFFFFE),
    "deleted length beyond u32": one_item(vu(2**32), info=0x01),
    "origin clock beyond u32": b"\x01\x01\x01\x00\x84\x01" + vu(2**32) + vs("a") + b"\x00",
    "delete range beyond u32": b"\x00\x01\x01\x01" + vu(0xFFFFFFFF) + b"\x01",
    "trailing byte": b"\x00\x00\x00",
    "missing delete set": b"\x00",
    "truncated struct": one_item(vs("abc"), info=0x04)[:-3],
}


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_hostile_and_malformed_rejected_cheaply(name: str) -> None:
    """Refused before the claimed counts and sizes are believed: memory stays bounded
    whatever the header claims (how fast is measured in benchmarks/, not asserted here)."""
    data = REJECTED[name]
    tracemalloc.start()
    try:
        with pytest.raises(UpdateError):
            inspect_update(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024 + 2 * len(data)


def test_max_depth_parameter() -> None:
    assert inspect_update(one_item(b"\x01" + nested_any(64), info=0x08)).struct_count == 1
    deep = one_item(b"\x01" + nested_any(10_000), info=0x08)
    assert inspect_update(deep, max_depth=10_000).struct_count == 1  # iterative: no recursion
    with pytest.raises(UpdateError):
        inspect_update(one_item(b"\x01" + nested_any(3), info=0x08), max_depth=2)


def typical_keystroke() -> bytes:
    """A one-character insert between two characters, as a y-websocket client sends it."""
    doc: Doc[Any] = Doc(client_id=CLIENT)
    text = doc.get("content", type=Text)
    text += "Hello world, this is a wedding plan."
    before = doc.get_state()
    text.insert(5, "!")
    return doc.get_update(before)


def test_typical_keystroke_is_fast() -> None:
    update = typical_keystroke()
    assert inspect_update(update).structs == {CLIENT: (36, 37)}
    runs = 2000
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(runs):
            inspect_update(update)
        best = min(best, (time.perf_counter() - started) / runs)
    print(f"inspect_update on a {len(update)}-byte keystroke: {best * 1e6:.2f} us")
    assert best < 100e-6  # target is well under 20 us; loose bound against CI noise


# --- fuzzing ---------------------------------------------------------------------------


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    buf = bytearray(data)
    for op, where, value in ops:
        at = where % (len(buf) + 1)
        if op == 0 and buf:  # flip one bit
            at %= len(buf)
            buf[at] ^= 1 << (value % 8)
        elif op == 1 and buf:  # overwrite a byte
            buf[at % len(buf)] = value
        elif op == 2:  # insert a byte
            buf.insert(at, value)
        elif op == 3 and buf:  # delete a byte
            del buf[at % len(buf)]
        elif op == 4:  # truncate
            del buf[at:]
        elif op == 5:  # splice in a large varuint
            buf[at:at] = vu(value << (7 * (value % 8)))
    return bytes(buf)


def inspect_or_none(data: bytes) -> UpdateSummary | None:
    try:
        return inspect_update(data)
    except UpdateError:
        return None


def pycrdt_accepts(data: bytes) -> bool:
    """Apply to a fresh doc; pycrdt errors and panics (BaseException) count as rejection."""
    try:
        Doc().apply_update(data)
    except BaseException as exc:  # pyo3 PanicException derives from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return False
    return True


FUZZ_SETTINGS = settings(
    deadline=None,
    max_examples=examples(full=300, fast=100),
    suppress_health_check=[HealthCheck.too_slow],
)
ops_strategy = st.lists(
    st.tuples(st.integers(0, 5), st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=4
)


@FUZZ_SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_update_error(data: bytes) -> None:
    inspect_or_none(data)


@FUZZ_SETTINGS
@given(st.sampled_from(REAL_UPDATES), ops_strategy)
def test_mutated_updates_only_raise_update_error(
    base: bytes, ops: list[tuple[int, int, int]]
) -> None:
    data = mutate(base, ops)
    if inspect_or_none(data) is not None:
        pycrdt_accepts(data)  # must not hang or abort; rejection is tolerated


def test_pycrdt_agreement_on_mutations() -> None:
    """Record how often pycrdt rejects mutated updates that inspect_update accepted."""
    rng = random.Random(20240611)
    accepted = pycrdt_rejected = 0
    for _ in range(3000):
        base = rng.choice(REAL_UPDATES)
        ops = [(rng.randrange(6), rng.randrange(2**16), rng.randrange(256))]
        data = mutate(base, ops)
        if inspect_or_none(data) is None:
            continue
        accepted += 1
        if not pycrdt_accepts(data):
            pycrdt_rejected += 1
    print(f"accepted {accepted}/3000 mutations; pycrdt rejected {pycrdt_rejected} of them")
    assert accepted > 0


# -- what an update builds on: integrable() --------------------------------------------------


def test_integrable_needs_other_clients_content_it_names() -> None:
    a: Doc[Any] = Doc(client_id=21)
    a.get("t", type=Text).insert(0, "abc")
    from_a = a.get_update()
    b: Doc[Any] = Doc(client_id=22)
    b.apply_update(from_a)
    before = b.get_state()
    b.get("t", type=Text).insert(2, "X")  # origin 21#1, right origin 21#2
    summary = inspect_update(b.get_update(before))
    assert summary.needs == {22: 0}
    assert summary.refs == {21: 3}
    assert not integrable(summary, {})
    assert not integrable(summary, {21: 2})
    assert integrable(summary, {21: 3})
    # In one update together, the named content comes along.
    assert integrable(inspect_update(b.get_update()), {})


def test_an_item_naming_its_own_clients_future_is_refused() -> None:
    # Client 1004, clock 0: a string whose origin is 1004#5, which cannot have existed yet.
    # (This shape, with a far larger clock, was part of a sequence that crashed yrs.)
    forged = bytes.fromhex("0101ec070084ec0705017800")
    with pytest.raises(UpdateError, match="refers to its own future"):
        inspect_update(forged)
    with pytest.raises(UpdateError, match="refers to its own future"):
        inspect_update(bytes.fromhex("0101ec070084ec0700017800"))  # to itself
    assert inspect_update(bytes.fromhex("0102ec0700040100017884ec0700017900")).structs == {
        1004: (0, 2)
    }  # "x" at 1004#0, then "y" with origin 1004#0: fine


# --- the item limit (CRDT_SERVER_MAX_UPDATE_ITEMS, issue 73) ---------------------------


def _keys(n: int, *, client: int = 7) -> bytes:
    """One transaction setting ``n`` keys of a root map: ``n`` structs, no delete range."""
    doc: Doc[Any] = Doc(client_id=client)
    root = doc.get("guests", type=Map)
    with doc.transaction():
        for i in range(n):
            root[f"g{i}"] = i
    return doc.get_update()


def test_items_count_the_structs_and_delete_ranges_it_declares() -> None:
    assert inspect_update(_keys(50)).items == 50
    doc: Doc[Any] = Doc(client_id=8)
    text = doc.get("t", type=Text)
    text += "abcdefgh"
    del text[1:2]
    del text[4:5]  # two delete ranges of one client
    summary = inspect_update(doc.get_update())
    assert summary.items == summary.struct_count + 2
    assert inspect_update(doc.get_update(), max_items=summary.items) == summary


def test_an_update_one_item_over_the_limit_is_refused_and_one_at_it_taken() -> None:
    update = _keys(100)
    assert inspect_update(update, max_items=100).items == 100
    with pytest.raises(OverItemLimit) as refused:
        inspect_update(update, max_items=99)
    assert (refused.value.counted, refused.value.limit) == (100, 99)
    assert isinstance(refused.value, UpdateError)  # every caller's except still holds


def test_the_count_is_refused_before_any_item_is_read() -> None:
    """The structs after a count over the limit are never read: garbage in their place is
    still refused for its count, not as malformed."""
    declared = 1_000_000
    garbage = b"\xff" * (2 * declared)  # not one well-formed struct
    forged = b"\x01" + vu(declared) + vu(CLIENT) + vu(0) + garbage + b"\x00"
    with pytest.raises(UpdateError, match="truncated|varuint|info"):
        inspect_update(forged)  # read as it is: malformed
    started = time.perf_counter()
    with pytest.raises(OverItemLimit):
        inspect_update(forged, max_items=160_000)
    assert time.perf_counter() - started < 0.01


def test_delete_ranges_count_and_are_refused_before_they_are_read() -> None:
    ranges = b"".join(vu(2 * k) + vu(1) for k in range(10))
    deletes = b"\x00\x01" + vu(CLIENT) + vu(10) + ranges  # no structs; 10 ranges
    assert inspect_update(deletes, max_items=10).items == 10
    with pytest.raises(OverItemLimit):
        inspect_update(deletes, max_items=9)
    forged = b"\x00\x01" + vu(CLIENT) + vu(1_000_000) + b"\xff" * 2_000_000
    with pytest.raises(OverItemLimit):
        inspect_update(forged, max_items=160_000)


def test_the_count_runs_over_every_client_and_the_delete_set() -> None:
    a, b = _keys(30, client=11), _keys(30, client=12)
    both = pycrdt.merge_updates(a, b)
    assert inspect_update(both).items == 60
    with pytest.raises(OverItemLimit):
        inspect_update(both, max_items=59)  # the second client's count passes it
    doc: Doc[Any] = Doc(client_id=13)
    doc.apply_update(_keys(5, client=14))
    root = doc.get("guests", type=Map)
    with doc.transaction():
        root["new"] = 1
        del root["g1"]
        del root["g3"]  # two ranges of client 14
    update = doc.get_update(b"\x01" + vu(14) + vu(5))
    assert inspect_update(update).items == 3
    with pytest.raises(OverItemLimit):
        inspect_update(update, max_items=2)
