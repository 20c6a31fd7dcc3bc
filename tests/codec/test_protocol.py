"""Property tests of the y-protocols codec and the awareness payload codec, plus unit tests of
the awareness registry (who may speak for which client id)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeAlias

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from crdt_server.codec.awareness import (
    AwarenessEntry,
    decode_awareness,
    encode_awareness_entries,
)
from crdt_server.codec.protocol import (
    AuthDenied,
    AwarenessMessage,
    Message,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    decode_message,
    encode_awareness,
    encode_permission_denied,
    encode_query_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
    read_var_string,
    read_var_uint,
    write_var_string,
    write_var_uint,
)
from crdt_server.core.presence import AwarenessRegistry
from crdt_server.errors import PolicyViolation, ProtocolError

MAX_SAFE = 2**53 - 1

Json: TypeAlias = None | bool | int | float | str | list["Json"] | dict[str, "Json"]

json_values: st.SearchStrategy[Json] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=5)

# -- varuints -------------------------------------------------------------------------------


@given(st.integers(0, MAX_SAFE), st.binary(max_size=4), st.binary(max_size=4))
def test_var_uint_round_trips(value: int, prefix: bytes, suffix: bytes) -> None:
    encoded = write_var_uint(value)
    assert len(encoded) <= 8
    assert read_var_uint(prefix + encoded + suffix, len(prefix)) == (
        value,
        len(prefix) + len(encoded),
    )


@example(MAX_SAFE)
@given(st.integers(0, MAX_SAFE))
def test_var_uint_is_minimal_lib0_encoding(value: int) -> None:
    encoded = write_var_uint(value)
    assert all(byte & 0x80 for byte in encoded[:-1])
    assert encoded[-1] < 0x80
    assert len(encoded) == max(1, -(-value.bit_length() // 7))


@given(st.binary(min_size=8, max_size=8).map(lambda b: bytes(x | 0x80 for x in b)), st.binary())
def test_var_uint_longer_than_8_bytes_is_rejected(continued: bytes, rest: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_var_uint(continued + rest, 0)


@given(st.binary(max_size=7).map(lambda b: bytes(x | 0x80 for x in b)))
def test_truncated_var_uint_is_rejected(continued: bytes) -> None:
    with pytest.raises(ProtocolError):
        read_var_uint(continued, 0)


def test_var_uint_rejects_negative() -> None:
    with pytest.raises(ValueError):
        write_var_uint(-1)


@given(st.text(), st.binary(max_size=4))
def test_var_string_round_trips(text: str, suffix: bytes) -> None:
    encoded = write_var_string(text)
    assert read_var_string(encoded + suffix, 0) == (text, len(encoded))


# -- messages -------------------------------------------------------------------------------


def _arbitrary_frames() -> st.SearchStrategy[bytes]:
    """Random bytes, and random bytes behind each known type byte (and sync subtype)."""
    headed = st.tuples(
        st.sampled_from(
            [
                b"\x00\x00",
                b"\x00\x01",
                b"\x00\x02",
                b"\x00\x03",
                b"\x01",
                b"\x02\x00",
                b"\x02\x01",
                b"\x03",
            ]
        ),
        st.binary(max_size=40),
    )
    return st.binary(max_size=64) | headed.map(lambda parts: parts[0] + parts[1])


@example(b"")
@example(b"\x80" * 9)
@example(b"\x00\x00\x05abc")
@example(b"\x02\x00\x02\xff\xfe")
@example(b"\x03\x00")
@given(_arbitrary_frames())
def test_decode_message_returns_a_message_or_raises_protocol_error(frame: bytes) -> None:
    try:
        message = decode_message(frame)
    except ProtocolError:
        return
    assert isinstance(
        message, SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness | AuthDenied
    )


ENCODERS: list[tuple[Callable[[bytes], bytes], Callable[[bytes], Message]]] = [
    (encode_sync_step1, SyncStep1),
    (encode_sync_step2, SyncStep2),
    (encode_update, SyncUpdate),
    (encode_awareness, AwarenessMessage),
]


@pytest.mark.parametrize(
    ("encode", "kind"), ENCODERS, ids=["step1", "step2", "update", "awareness"]
)
@given(payload=st.binary(max_size=300))
def test_binary_payload_messages_round_trip(
    encode: Callable[[bytes], bytes], kind: Callable[[bytes], Message], payload: bytes
) -> None:
    frame = encode(payload)
    assert decode_message(frame) == kind(payload)


@given(st.binary(max_size=40), st.binary(min_size=1, max_size=4))
def test_trailing_or_missing_bytes_are_rejected(payload: bytes, extra: bytes) -> None:
    frame = encode_update(payload)
    with pytest.raises(ProtocolError):
        decode_message(frame + extra)
    with pytest.raises(ProtocolError):
        decode_message(frame[:-1])


def test_query_awareness_round_trips() -> None:
    assert decode_message(encode_query_awareness()) == QueryAwareness()


@given(st.text(max_size=100))
def test_auth_denied_round_trips(reason: str) -> None:
    assert decode_message(encode_permission_denied(reason)) == AuthDenied(reason)


def test_auth_denied_with_bad_utf8_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_message(b"\x02\x00\x02\xff\xfe")


# -- awareness payloads ---------------------------------------------------------------------


@example(b"\x01\x07\x01\x04null", 64, 4)
@example(b"\x01\x07\x01\x05[1,2]", 64, 4)
@example(b"\x02\x01\x01\x02{}\x02\x01\x02{}", 64, 4)
@given(st.binary(max_size=80), st.integers(1, 64), st.integers(0, 4))
def test_decode_awareness_raises_only_codec_errors(
    payload: bytes, max_state_bytes: int, max_entries: int
) -> None:
    try:
        entries = decode_awareness(
            payload, max_state_bytes=max_state_bytes, max_entries=max_entries
        )
    except (ProtocolError, PolicyViolation):
        return
    assert len(entries) <= max_entries
    for entry in entries:
        assert entry.removed or isinstance(json.loads(entry.state), dict)


awareness_entries = st.lists(
    st.builds(
        AwarenessEntry,
        st.integers(0, MAX_SAFE),
        st.integers(0, MAX_SAFE),
        (json_objects | st.none()).map(json.dumps),
    ),
    max_size=6,
)


@given(awareness_entries)
def test_awareness_entries_round_trip(entries: list[AwarenessEntry]) -> None:
    payload = encode_awareness_entries(entries)
    decoded = decode_awareness(payload, max_state_bytes=1 << 20, max_entries=64)
    assert decoded == entries
    for entry in decoded:
        assert entry.removed == (entry.state == "null")
        if not entry.removed:
            assert isinstance(json.loads(entry.state), dict)
    # And the whole message around it.
    assert decode_message(encode_awareness(payload)) == AwarenessMessage(payload)


def test_awareness_client_id_out_of_range_is_a_protocol_error() -> None:
    payload = write_var_uint(1) + write_var_uint(MAX_SAFE + 1) + b"\x01" + write_var_string("{}")
    with pytest.raises(ProtocolError):
        decode_awareness(payload, max_state_bytes=100, max_entries=1)


def test_awareness_too_many_entries_is_a_policy_violation() -> None:
    entries = [AwarenessEntry(i, 1, "{}") for i in range(3)]
    with pytest.raises(PolicyViolation):
        decode_awareness(encode_awareness_entries(entries), max_state_bytes=100, max_entries=2)


def test_awareness_state_of_exactly_the_limit_is_accepted() -> None:
    """Settings.max_awareness_state_bytes is "the largest awareness state (JSON text)": the
    JSON text itself counts, not its varuint length prefix."""
    limit = 16 * 1024
    pad = limit - len(json.dumps({"a": ""}))
    state = json.dumps({"a": "x" * pad})
    assert len(state.encode()) == limit
    payload = encode_awareness_entries([AwarenessEntry(1, 1, state)])
    assert decode_awareness(payload, max_state_bytes=limit, max_entries=1) == [
        AwarenessEntry(1, 1, state)
    ]
    too_big = json.dumps({"a": "x" * (pad + 1)})
    with pytest.raises(PolicyViolation):
        decode_awareness(
            encode_awareness_entries([AwarenessEntry(1, 1, too_big)]),
            max_state_bytes=limit,
            max_entries=1,
        )


@pytest.mark.parametrize("state", ['{"a":' + "[" * 5000, "[" * 5000 + "]" * 5000])
def test_deeply_nested_awareness_state_is_a_protocol_error(state: str) -> None:
    """json.loads raises RecursionError (not a ValueError) on deep nesting; that must still
    be a ProtocolError (close 1007), not an exception escaping serve_connection."""
    payload = encode_awareness_entries([AwarenessEntry(1, 1, state)])
    with pytest.raises(ProtocolError):
        decode_awareness(payload, max_state_bytes=16 * 1024, max_entries=64)


# -- the awareness registry -----------------------------------------------------------------


def _entry(client_id: int, clock: int, state: dict[str, Json] | None) -> AwarenessEntry:
    return AwarenessEntry(client_id, clock, json.dumps(state))


def test_another_principal_cannot_speak_for_an_introduced_client_id() -> None:
    registry = AwarenessRegistry()
    alice, mallory = object(), object()
    first = _entry(7, 1, {"name": "alice"})
    assert registry.apply(alice, "alice", [first]) == [first]
    assert registry.apply(mallory, "mallory", [_entry(7, 5, {"name": "mallory"})]) == []
    assert registry.apply(mallory, "mallory", [_entry(7, 6, None)]) == []
    assert registry.rejected == 2
    assert registry.states() == [first]
    assert registry.clients_of(alice) == [7]
    assert registry.clients_of(mallory) == []
    # Mallory leaving removes nothing of Alice's.
    assert registry.remove_owner(mallory) == []
    assert registry.states() == [first]


def test_same_principal_may_take_over_a_client_id() -> None:
    registry = AwarenessRegistry()
    old_socket, new_socket = object(), object()
    registry.apply(old_socket, "alice", [_entry(7, 1, {"v": 1})])
    newer = _entry(7, 2, {"v": 2})
    assert registry.apply(new_socket, "alice", [newer]) == [newer]
    assert registry.rejected == 0
    assert registry.clients_of(new_socket) == [7]
    assert registry.clients_of(old_socket) == []
    # The old socket going away no longer removes the client id.
    assert registry.remove_owner(old_socket) == []
    assert registry.states() == [newer]


def test_stale_and_equal_clocks_are_ignored_but_same_clock_removal_wins() -> None:
    registry = AwarenessRegistry()
    conn = object()
    current = _entry(3, 5, {"v": 5})
    registry.apply(conn, "p", [current])
    assert registry.apply(conn, "p", [_entry(3, 4, {"v": 4})]) == []
    assert registry.apply(conn, "p", [_entry(3, 5, {"v": "other"})]) == []
    assert registry.states() == [current]
    removal = _entry(3, 5, None)
    assert registry.apply(conn, "p", [removal]) == [removal]
    assert registry.states() == []
    # A removal of an id nobody introduced is not recorded.
    assert registry.apply(conn, "p", [_entry(99, 1, None)]) == []
    assert registry.clients_of(conn) == [3]


def test_remove_owner_yields_null_removals_with_the_next_clock() -> None:
    registry = AwarenessRegistry()
    conn, other = object(), object()
    registry.apply(conn, "p", [_entry(1, 3, {"a": 1}), _entry(2, 9, {"b": 2})])
    registry.apply(conn, "p", [_entry(4, 1, {"c": 3}), _entry(4, 2, None)])  # already gone
    registry.apply(other, "q", [_entry(5, 1, {"d": 4})])
    removals = registry.remove_owner(conn)
    assert sorted(removals, key=lambda e: e.client_id) == [
        AwarenessEntry(1, 4, "null"),
        AwarenessEntry(2, 10, "null"),
    ]
    assert all(entry.removed for entry in removals)
    assert registry.clients_of(conn) == []
    assert registry.states() == [_entry(5, 1, {"d": 4})]
    # The removals are valid awareness payload entries.
    payload = encode_awareness_entries(removals)
    assert decode_awareness(payload, max_state_bytes=100, max_entries=8) == removals
    assert registry.remove_owner(conn) == []


def test_a_late_echo_of_a_departed_clients_state_does_not_bring_it_back() -> None:
    """Stock clients relay every awareness change they receive: after a client leaves,
    another connection of the same principal may still send the last state it had of it
    (sent before the removal reached it). That echo must not bring the client back (it
    stayed until it expired, 30 s later); the client itself coming back on a new
    connection, at the same clock, is welcome."""
    registry = AwarenessRegistry()
    leaving, staying, back = object(), object(), object()
    state = _entry(7, 2, {"name": "zero"})
    assert registry.apply(leaving, "anon", [state], serial=1) == [state]
    assert registry.apply(staying, "anon", [state], serial=2) == []  # an echo: equal clock
    assert registry.remove_owner(leaving, newest=2) == [_entry(7, 3, None)]
    assert registry.apply(staying, "anon", [state], serial=2) == []  # the late echo
    assert registry.states() == []
    assert registry.rejected == 0
    assert registry.apply(back, "anon", [state], serial=3) == [state]  # the client again
    assert registry.clients_of(back) == [7]
