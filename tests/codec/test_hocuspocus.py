"""The Hocuspocus framing (crdt_server/codec/hocuspocus.py): what the provider 4.8 writes,
what the server answers, and hostile input refused with bounded work."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt_server.codec.hocuspocus import (
    MAX_NAME_BYTES,
    MAX_TOKEN_BYTES,
    PING,
    PONG,
    Auth,
    Detach,
    Framed,
    Ping,
    Pong,
    authenticated,
    close_message,
    decode_frame,
    document_of,
    framed,
    permission_denied,
    read_stateless,
    stateless,
    sync_status,
    token_request,
)
from crdt_server.codec.protocol import encode_sync_step1, write_var_string
from crdt_server.errors import ProtocolError
from crdt_server.lib0 import write_var_uint


def key(name: str) -> bytes:
    return write_var_string(name)


def test_what_the_provider_sends() -> None:
    # AuthenticationMessage: name, 2, 0 (token), the token, the provider's version.
    frame = key("w1/guests") + bytes((2, 0)) + write_var_string("tok") + write_var_string("4.8.0")
    assert decode_frame(frame) == Auth("w1/guests", "tok")
    assert decode_frame(key("w1/guests") + bytes((2, 0)) + write_var_string("")) == Auth(
        "w1/guests", ""
    )
    step1 = encode_sync_step1(b"\x00")
    assert decode_frame(key("w1/guests") + step1) == Framed("w1/guests", step1)
    assert decode_frame(key("w1/guests") + bytes((3,))) == Framed("w1/guests", bytes((3,)))
    body = stateless('{"a":1}')
    assert decode_frame(key("w1/t") + body) == Framed("w1/t", body)
    assert read_stateless(body) == '{"a":1}'
    assert decode_frame(key("w1/t") + bytes((7,))) == Detach("w1/t")
    assert decode_frame(PING) == Ping()
    assert decode_frame(PONG) == Pong()
    routed = "w1/t\0abc123"
    assert decode_frame(key(routed) + step1) == Framed(routed, step1)
    assert document_of(routed) == "w1/t" and document_of("w1/t") == "w1/t"


def test_what_the_server_sends() -> None:
    assert authenticated("w1/t", read_only=False) == key("w1/t") + b"\x02\x02" + write_var_string(
        "read-write"
    )
    assert authenticated("w1/t", read_only=True).endswith(write_var_string("readonly"))
    assert permission_denied("w1/t", "no") == key("w1/t") + b"\x02\x01" + write_var_string("no")
    assert token_request("w1/t") == key("w1/t") + b"\x02\x00"
    assert sync_status(True) == b"\x08\x01" and sync_status(False) == b"\x08\x00"
    assert close_message("w1/t", "4404 gone") == key("w1/t") + b"\x07" + write_var_string(
        "4404 gone"
    )
    assert framed("k", b"\x01\x00") == key("k") + b"\x01\x00"


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00",  # an empty name
        write_var_uint(MAX_NAME_BYTES + 1) + b"x" * (MAX_NAME_BYTES + 1) + b"\x00",
        write_var_uint(10**9),  # a name that claims a gigabyte
        key("w1/t"),  # no type
        key("w1/t") + b"\x04",  # no such type
        key("w1/t") + b"\x08\x01",  # sync status: only servers send it
        key("w1/t") + b"\x02\x01" + write_var_string("x"),  # permission denied: servers only
        key("w1/t") + b"\x02\x00" + write_var_uint(MAX_TOKEN_BYTES + 1),
        key("w1/t") + b"\x02\x00" + write_var_string("t") + write_var_string("v") + b"!",
        key("w1/t") + b"\x05" + write_var_string("x") + b"!",
        key("w1/t") + b"\x05\x09",  # a truncated payload
        key("w1/t") + b"\x07!",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        key("w1/t") + b"\x02\x00\xc3",
    ],
)
def test_malformed_frames_are_protocol_errors(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_frame(frame)


def test_read_stateless_refuses_what_is_no_stateless_body() -> None:
    assert read_stateless(b"\x05") is None
    assert read_stateless(b"\x01" + write_var_string("x")) is None
    assert read_stateless(stateless("x") + b"!") is None


@given(st.binary(max_size=64))
def test_any_bytes_decode_or_raise_protocol_error(frame: bytes) -> None:
    try:
        decode_frame(frame)
    except ProtocolError:
        pass


def test_a_large_hostile_frame_costs_little() -> None:
    frames = [
        key("w1/t") + b"\x02\x00" + write_var_uint(8 * 1024 * 1024) + b"a" * (1024 * 1024),
        write_var_uint(MAX_NAME_BYTES + 1) + b"x" * (8 * 1024 * 1024),
    ]
    started = time.process_time()
    for frame in frames:
        with pytest.raises(ProtocolError):
            decode_frame(frame)
    assert time.process_time() - started < 0.5
