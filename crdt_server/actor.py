"""Who: the one type for a person (or the server) acting on a wedding.

Every layer that names who did or asks something uses :class:`Actor`: the core credits
updates to one, the domain ranks them, the features store and notify them and the HTTP API
shows them as ``{"sub", "role"}`` (msgspec encodes the dataclass as it does a Struct). It
imports only the standard library, so the domain (``crdt_server.documents``, which imports
nothing else of the server) may use it too.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Actor"]


# Types that carry more than who hold one: crdt_server.core.hooks.Sender (and through which
# channel), the threads' Viewer (and what they may read and do).
@dataclass(frozen=True, slots=True)
class Actor:
    """Who: a person's user id (their token's ``sub``) and the role they act in
    (``couple``, ``planner``, ``vendor``, ``family``, ``friend``; ``server``, ``admin`` or
    ``integration`` for changes the server makes itself)."""

    sub: str
    role: str
