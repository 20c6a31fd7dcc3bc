"""The pure RFC 6455 frame codec, fuzzed with hypothesis like the y-protocol codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt_server.codec.websocket_frames import (
    FrameError,
    Opcode,
    accept_key,
    apply_mask,
    check_client_frame,
    decode_close,
    encode_close,
    encode_frame,
    frame_header,
    parse_header,
)

pytestmark = pytest.mark.timeout(60)

masks = st.binary(min_size=4, max_size=4)


def test_accept_key_of_rfc_6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@given(st.binary(max_size=70_000), masks, st.sampled_from(list(Opcode)), st.booleans())
def test_a_masked_frame_round_trips(payload: bytes, mask: bytes, opcode: int, fin: bool) -> None:
    frame = encode_frame(opcode, payload, fin=fin, mask=mask)
    header = parse_header(frame)
    assert header is not None
    assert (header.fin, header.opcode, header.length, header.mask) == (
        fin,
        opcode,
        len(payload),
        mask,
    )
    assert header.size + header.length == len(frame)
    assert apply_mask(frame[header.size :], mask) == payload
    # Every strict prefix of the header is "not all there yet", never an error.
    for cut in range(header.size):
        assert parse_header(frame[:cut]) is None


@given(st.binary(max_size=70_000))
def test_a_server_frame_header_parses_back(payload: bytes) -> None:
    frame = frame_header(Opcode.BINARY, len(payload)) + payload
    assert frame == encode_frame(Opcode.BINARY, payload)
    header = parse_header(frame)
    assert header is not None and header.mask is None and header.length == len(payload)


@given(st.binary(max_size=64), st.integers(0, 1 << 20), st.integers(0, 1 << 20))
def test_any_bytes_parse_or_wait_and_checks_raise_only_frame_errors(
    data: bytes, max_message: int, fragments: int
) -> None:
    header = parse_header(data)
    if header is None:
        return
    assert header.size <= len(data)
    try:
        check_client_frame(header, max_message, fragments)
    except FrameError as exc:
        assert exc.code in (1002, 1009)


@given(st.integers(0, 65535), st.text(max_size=200))
def test_close_payload_round_trips_or_is_refused(code: int, reason: str) -> None:
    payload = encode_close(code, reason)
    assert len(payload) <= 125
    try:
        decoded = decode_close(payload)
    except FrameError as exc:
        assert exc.code == 1002  # only the code can be wrong: the reason is valid UTF-8
        return
    assert decoded[0] == code
    assert reason.startswith(decoded[1])


@given(st.binary(max_size=125))
def test_any_close_payload_decodes_or_raises_a_frame_error(payload: bytes) -> None:
    try:
        code, _ = decode_close(payload)
    except FrameError as exc:
        assert exc.code in (1002, 1007)
    else:
        assert code == 1005 or 1000 <= code <= 4999


def test_the_checks_a_server_makes() -> None:
    def check(frame: bytes, max_message: int = 100) -> int | None:
        header = parse_header(frame)
        assert header is not None
        try:
            check_client_frame(header, max_message)
        except FrameError as exc:
            return exc.code
        return None

    mask = b"abcd"
    assert check(encode_frame(Opcode.BINARY, b"x", mask=mask)) is None
    assert check(encode_frame(Opcode.BINARY, b"x")) == 1002  # unmasked
    assert check(encode_frame(Opcode.BINARY, b"x", rsv=4, mask=mask)) == 1002
    assert check(encode_frame(0x3, b"x", mask=mask)) == 1002
    assert check(encode_frame(0xB, b"x", mask=mask)) == 1002
    assert check(encode_frame(Opcode.PING, b"x", fin=False, mask=mask)) == 1002
    assert check(encode_frame(Opcode.PING, b"x" * 126, mask=mask)) == 1002
    assert check(encode_frame(Opcode.BINARY, b"", length=1 << 40, mask=mask)) == 1009
