"""The permission guards every HTTP route shares: the caller as seen by a document, a
wedding or a capability, refused with :class:`~crdt_server.edge.problems.ApiError` (401 on a
bad token, 403 when not allowed, 404 for no such document or wedding).

The core's routes (:mod:`crdt_server.edge.documents`) and the features' routes take the
caller through these, so the WebSocket rooms and every HTTP route grant the same things.
"""

from __future__ import annotations

from crdt_server.auth.principals import Principal
from crdt_server.core.hooks import Sender
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall
from crdt_server.names import document_name, valid_wedding_id

__all__ = [
    "capable_principal",
    "document_principal",
    "readable_documents",
    "sender_of",
    "wedding_principal",
    "writer_principal",
]


def document_principal(call: ApiCall, wedding_id: str, doc: str, *, write: bool) -> Principal:
    """The caller as seen by one document (404 if there is no such document, 403 if it
    may not read it, or not write it when ``write``)."""
    if document_name(wedding_id, doc) is None:
        raise ApiError(404, "no such document")
    principal = call.principal(wedding_id, doc)
    if write and not principal.can_write:
        raise ApiError(403, f"{doc!r} is read-only for you")
    return principal


def writer_principal(call: ApiCall, wedding_id: str, doc: str) -> Principal:
    """The caller as a writer of one document (403 if it may not write it)."""
    return document_principal(call, wedding_id, doc, write=True)


def wedding_principal(call: ApiCall, wedding_id: str, readable: set[str]) -> Principal:
    """The caller as seen by one of the wedding's documents it may read."""
    return document_principal(call, wedding_id, sorted(readable)[0], write=False)


def capable_principal(
    call: ApiCall, wedding_id: str, capability: str, readable: set[str] | None = None
) -> Principal:
    """The caller, if its role has ``capability`` in the permission matrix (403 if not;
    401 on a bad token, 403 if it may read nothing of the wedding). ``readable``: the
    caller's :func:`readable_documents`, when already known."""
    if readable is None:
        readable = readable_documents(call, wedding_id)
    principal = wedding_principal(call, wedding_id, readable)
    if not call.state.permissions.can(principal.role, capability):
        raise ApiError(403, f"the {principal.role} role does not have {capability!r}")
    return principal


def readable_documents(call: ApiCall, wedding_id: str) -> set[str]:
    """The documents of the wedding the caller may read (403 if none, 401 on a bad token)."""
    if not valid_wedding_id(wedding_id):
        raise ApiError(404, "no such wedding")
    readable: set[str] = set()
    for doc in DOCUMENT_KINDS:
        try:
            document_principal(call, wedding_id, doc, write=False)
        except ApiError as exc:
            if exc.status_code != 403:
                raise
        else:
            readable.add(doc)
    if not readable:
        raise ApiError(403, "no document of this wedding is open to you")
    return readable


def sender_of(principal: Principal) -> Sender:
    """Who an HTTP change is credited to, through the channel ``http:<sub>``."""
    return Sender(principal.actor, f"http:{principal.user_id}")
