"""RFC 6455 framing as pure functions over bytes: no I/O, no state.

The server's protocol (:mod:`crdt_server.wire.websocket`), the raw-socket tests and the
benchmark client all frame with this module. Parsing a header never raises on a short
buffer (it answers ``None``: wait for more bytes); :func:`check_client_frame` says, with a
close code, what a server must refuse in a client frame.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "CONTROL_MAX",
    "FrameError",
    "FrameHeader",
    "Opcode",
    "accept_key",
    "apply_mask",
    "check_client_frame",
    "decode_close",
    "encode_close",
    "encode_frame",
    "frame_header",
    "parse_header",
    "valid_close_code",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTROL_MAX = 125
"""Largest payload of a control frame (close, ping, pong)."""
PROTOCOL_ERROR = 1002
INVALID_PAYLOAD = 1007
MESSAGE_TOO_BIG = 1009
NO_STATUS = 1005


class Opcode(IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class FrameError(Exception):
    """The peer broke the protocol: fail the connection with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FrameHeader:
    fin: bool
    rsv: int
    """The three reserved bits, as a number 0-7."""
    opcode: int
    """The raw opcode (unknown ones included; see :class:`Opcode`)."""
    length: int
    """Payload length announced."""
    mask: bytes | None
    """The 4-byte masking key, or ``None`` for an unmasked frame."""
    size: int
    """Bytes of the header, masking key included: the payload starts here."""


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def apply_mask(data: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (masking and unmasking alike)."""
    n = len(data)
    if n == 0:
        return b""
    key = (bytes(mask) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def frame_header(opcode: int, length: int) -> bytes:
    """The header of one unmasked, final frame of ``length`` payload bytes (a server's)."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """One whole frame; ``mask`` masks it (a client's), ``length`` announces another
    payload length than the real one (for tests of hostile peers)."""
    announced = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv & 0b111) << 4 | (opcode & 0x0F)
    mask_bit = 0x80 if mask is not None else 0
    if announced < 126:
        head = struct.pack("!BB", first, mask_bit | announced)
    elif announced < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, announced)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, announced)
    if mask is None:
        return head + payload
    if len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    return head + mask + apply_mask(payload, mask)


def parse_header(buffer: bytes | bytearray, pos: int = 0) -> FrameHeader | None:
    """The header of the frame at ``buffer[pos:]``, or ``None`` if it is not all there."""
    available = len(buffer) - pos
    if available < 2:
        return None
    first, second = buffer[pos], buffer[pos + 1]
    length = second & 0x7F
    size = 2
    if length == 126:
        if available < 4:
            return None
        length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
        size = 4
    elif length == 127:
        if available < 10:
            return None
        length = int.from_bytes(buffer[pos + 2 : pos + 10], "big")
        size = 10
    mask = None
    if second & 0x80:
        if available < size + 4:
            return None
        mask = bytes(buffer[pos + size : pos + size + 4])
        size += 4
    return FrameHeader(bool(first & 0x80), (first >> 4) & 0b111, first & 0x0F, length, mask, size)


def check_client_frame(header: FrameHeader, max_message: int, fragments_size: int = 0) -> None:
    """Raise :class:`FrameError` for what a server must refuse in a client frame (before
    its payload is read): RSV bits, no mask, unknown opcodes, a fragmented or too long
    control frame (1002), a message past ``max_message`` bytes with ``fragments_size``
    already received (1009)."""
    if header.rsv:
        raise FrameError(PROTOCOL_ERROR, "reserved bits set")
    if header.mask is None:
        raise FrameError(PROTOCOL_ERROR, "client frames must be masked")
    opcode = header.opcode
    if opcode >= Opcode.CLOSE:
        if opcode > Opcode.PONG:
            raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if not header.fin:
            raise FrameError(PROTOCOL_ERROR, "fragmented control frame")
        if header.length > CONTROL_MAX:
            raise FrameError(PROTOCOL_ERROR, "control frame over 125 bytes")
    elif opcode > Opcode.BINARY:
        raise FrameError(PROTOCOL_ERROR, f"unknown opcode {opcode}")
    elif header.length + fragments_size > max_message:
        raise FrameError(MESSAGE_TOO_BIG, f"message over {max_message} bytes")


def valid_close_code(code: int) -> bool:
    """May a peer send this code in a close frame (RFC 6455 7.4)?"""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def encode_close(code: int | None, reason: str = "") -> bytes:
    """A close frame's payload: empty for ``None``, else the code and as much of the
    reason as fits in a control frame (cut on a character boundary)."""
    if code is None:
        return b""
    raw = reason.encode("utf-8")
    if len(raw) > CONTROL_MAX - 2:
        raw = raw[: CONTROL_MAX - 2].decode("utf-8", "ignore").encode("utf-8")
    return code.to_bytes(2, "big") + raw


def decode_close(payload: bytes) -> tuple[int, str]:
    """A close frame's (code, reason); 1005 for an empty payload (RFC 6455 7.1.5).
    Raises :class:`FrameError` for a 1-byte payload, an invalid code (1002) or a reason
    that is not UTF-8 (1007)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "close frame of 1 byte")
    code = int.from_bytes(payload[:2], "big")
    if not valid_close_code(code):
        raise FrameError(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(INVALID_PAYLOAD, "close reason is not UTF-8") from None
    return code, reason
