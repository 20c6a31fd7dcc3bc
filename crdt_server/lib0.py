"""lib0's variable-length unsigned integer (7 bits a byte, least significant first), the
number every Yjs encoding is made of.

Shared vocabulary with no imports: the wire codecs (:mod:`crdt_server.codec`) and the
domain (:mod:`crdt_server.documents`, which imports nothing of the server above it) both
write these numbers, so the writer has one home below both.
"""

from __future__ import annotations

__all__ = ["write_var_uint"]


def write_var_uint(value: int) -> bytes:
    """lib0 unsigned varint: 7 bits a byte, least significant first."""
    if value < 0:
        raise ValueError("varuint must be non-negative")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)
