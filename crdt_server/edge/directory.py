"""The member directory as the edge sees it: every authenticated call to a wedding's route
(``GET /access`` included) registers its caller, as a WebSocket connection does.

The people feature keeps the directory; the edge knows it only as this protocol, found
among the server's extensions (as the projections are, :class:`~crdt_server.edge.upgrade
.Projector`), so a server without that feature registers nobody.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

from crdt_server.auth.principals import AuthError, Principal
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.identity import Caller
from crdt_server.edge.state import Services
from crdt_server.names import valid_wedding_id
from crdt_server.storage import StoreError

__all__ = ["MemberDirectory", "register_caller"]

log = logging.getLogger("crdt_server.edge")


@runtime_checkable
class MemberDirectory(Protocol):
    """What keeps each wedding's members (the people feature's ``People``)."""

    def registered(self, wedding: str, sub: str) -> bool:
        """Whether the directory has ``sub`` already, as far as this process knows."""
        ...

    async def register(
        self, wedding: str, sub: str, role: str, name: str, email: str | None
    ) -> None:
        """Record an authenticated caller the directory does not have (an entry it has is
        left as it is)."""
        ...

    async def role_of(self, wedding: str, sub: str) -> str | None:
        """The role of member ``sub`` of ``wedding``; ``None`` for no such member."""
        ...


def _caller_in(state: Services, caller: Caller, wedding: str) -> Principal | None:
    """The caller as a member of ``wedding``: their token opens one of its documents."""
    claims = caller.claims
    if caller.kind != "jwt" or claims is None:
        return None
    for doc in DOCUMENT_KINDS:
        try:
            return state.authenticator.authorize(claims, wedding, doc)
        except AuthError:
            continue
    return None


async def register_caller(state: Services, caller: Caller, wedding: str) -> None:
    """Record ``caller`` in ``wedding``'s directory if their token lets them in and the
    directory does not have them. A failure to write is logged, never
    the caller's refusal: the call itself is what they asked for."""
    if not valid_wedding_id(wedding) or state.erasures.gone(wedding):
        return
    directory = state.find(MemberDirectory)  # type: ignore[type-abstract]
    if directory is None:
        return
    p = _caller_in(state, caller, wedding)
    if p is None or not p.authenticated or not p.member:
        return
    if directory.registered(wedding, p.user_id):
        return
    try:
        await directory.register(wedding, p.user_id, p.role, p.name, p.email)
    except StoreError as exc:  # the call goes on; logged once, without personal data
        log.warning("the member directory did not record a caller: %s", type(exc).__name__)
