"""Version history over HTTP: list a document's restore points and restore one.

- ``GET /api/weddings/{id}/docs/{doc}/versions?after=SEQ&limit=N``: restore points, newest
  first (``after``: the ``next`` of the previous page), each with its seq, time, the
  people who changed the document since the previous point and what they changed (the
  first few of the feed's events between the two, as the caller's role may read them).
- ``GET /api/weddings/{id}/docs/{doc}?at=SEQ`` (in :mod:`crdt_server.edge.documents`):
  the document as of a seq.
- ``POST /api/weddings/{id}/docs/{doc}/restore`` ``{"seq": N}``: one new update, made as
  you, that makes the document equal to its state as of ``N`` (its events follow, plus a
  ``document.restored`` event). Needs the ``versions.restore`` capability (default couple
  and planner) and write access to the document.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server.actor import Actor
from crdt_server.edge.bodies import Page, Seq
from crdt_server.edge.guards import (
    capable_principal,
    document_principal,
    sender_of,
    writer_principal,
)
from crdt_server.edge.params import DocumentKind, PageLimit, WeddingId
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, NotFound
from crdt_server.features.events import readable_event
from crdt_server.features.versions.extension import NotKept, VersionKeeper
from crdt_server.times import rfc3339

__all__ = ["version_routes"]

_AUTH = (401, 403, 404, 429)


class Version(msgspec.Struct, frozen=True):
    seq: int
    """The document is exactly as it was after this seq (use with ``?at=`` or restore)."""
    at: str
    actors: list[Actor]
    """Who changed the document since the previous restore point."""
    changes: list[dict[str, Any]]
    """What they changed: the first few of the feed's events between the previous point
    and this one (``type``, ``data``; fields the caller may not read left out), from which
    a label in words is made ("Priya moved Anita to Rose")."""
    change_count: int | None
    """How many such events there were (``null``: a point taken before they were kept)."""


class VersionsAnswer(Page[Version, int], frozen=True):
    items: list[Version] = msgspec.field(name="versions")


class RestoreRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    seq: Seq


class RestoreAnswer(msgspec.Struct, frozen=True):
    committed: bool
    seq: int
    """The seq whose state the document has again (the newest kept at or before the one
    asked for)."""
    changed: bool
    event: str | None


version_routes = Routes()
_BASE = "/api/weddings/{wedding_id}/docs/{doc}"


class VersionedPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    doc: DocumentKind
    """Only the wedding documents keep versions (not the conflicts room)."""


class VersionsQuery(msgspec.Struct, frozen=True):
    after: Annotated[int, Meta(ge=0, le=2**62, description="next of the last page")] = 0
    limit: PageLimit = 50


@version_routes.get(
    f"{_BASE}/versions",
    "listVersions",
    "Restore points of a document (newest first): seq, time, who changed it since",
    family="read",
    response_model=VersionsAnswer,
    errors=(400, *_AUTH, 503),
)
async def list_versions(call: ApiCall, path: VersionedPath, query: VersionsQuery) -> Response:
    principal = document_principal(call, path.wedding_id, path.doc, write=False)
    points = await call.state.extension(VersionKeeper).points(
        f"{path.wedding_id}/{path.doc}", before=query.after or None, limit=query.limit
    )
    permissions = call.state.permissions

    def shown(change: dict[str, Any]) -> dict[str, Any]:
        item = {"type": change.get("type"), "doc": path.doc, "data": dict(change.get("data") or {})}
        readable_event(item, permissions, principal.role, principal.guest_fields)
        return {"type": item["type"], "data": item["data"]}

    versions = [
        Version(p.seq, rfc3339(p.at), list(p.actors), [shown(c) for c in p.changes], p.change_count)
        for p in points
    ]
    following = points[-1].seq if len(points) == query.limit else None
    return json_response(VersionsAnswer(versions, following))


@version_routes.post(
    f"{_BASE}/restore",
    "restoreDocument",
    'Make the document equal to its state as of a seq ({"seq": N}): one new update '
    "made as you, merged with concurrent edits",
    family="write",
    response_model=RestoreAnswer,
    errors=(400, *_AUTH, 413, 422, 503),
)
async def restore(call: ApiCall, path: VersionedPath, body: RestoreRequest) -> Response:
    principal = capable_principal(call, path.wedding_id, "versions.restore")
    writer_principal(call, path.wedding_id, path.doc)
    if body.seq < 0:
        raise Impossible("must be a seq (0 or more)", field="seq")
    keeper = call.state.extension(VersionKeeper)
    try:
        done = await keeper.restore(path.wedding_id, path.doc, body.seq, sender_of(principal))
    except NotKept as exc:
        raise NotFound("no state of this document is kept that far back", field="seq") from exc
    return json_response(RestoreAnswer(True, done.seq, done.changed, done.event))
