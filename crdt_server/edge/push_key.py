"""The Web Push key as the edge sees it: ``GET /access`` reports it, so an app notices a
new key (an operator set ``CRDT_SERVER_VAPID_PRIVATE_KEY``) and subscribes again.

The push feature keeps the key; the edge knows it only as this protocol, found among the
server's extensions (as the member directory is), so a server without that feature
reports none.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from crdt_server.edge.state import Services

__all__ = ["PushKey", "push_key_of"]


@runtime_checkable
class PushKey(Protocol):
    """What keeps the server's VAPID key (the push feature's ``Push``)."""

    @property
    def vapid_public_key(self) -> str | None:
        """The public key browsers subscribe with (base64url); ``None`` before start."""
        ...


def push_key_of(state: Services) -> str | None:
    """The server's VAPID public key, or ``None`` when it runs no push feature."""
    keeper = state.find(PushKey)  # type: ignore[type-abstract]
    return None if keeper is None else keeper.vapid_public_key
