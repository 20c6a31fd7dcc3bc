"""Room names: ``{wedding_id}/{doc}``, checked against a strict allowlist before anything else."""

from __future__ import annotations

import re

from crdt_server.documents import DOCUMENT_KINDS

__all__ = ["CONFLICTS", "ROOM_KINDS", "WEDDING_ID_PATTERN", "document_name", "valid_wedding_id"]

CONFLICTS = "conflicts"
"""The read-only room the server keeps up to date with a wedding's conflicts."""
ROOM_KINDS: tuple[str, ...] = (*DOCUMENT_KINDS, CONFLICTS)

WEDDING_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""1 to 64 ASCII letters, digits, ``-`` or ``_``, starting with a letter or digit."""


def valid_wedding_id(wedding_id: str) -> bool:
    return WEDDING_ID_PATTERN.fullmatch(wedding_id) is not None


def document_name(wedding_id: str, doc: str) -> str | None:
    """The room name for a wedding's document, or ``None`` if either part is not allowed."""
    if not valid_wedding_id(wedding_id) or doc not in ROOM_KINDS:
        return None
    return f"{wedding_id}/{doc}"
