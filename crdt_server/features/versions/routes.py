"""Version history over HTTP: list a document's restore points and restore one.

- ``GET /api/weddings/{id}/docs/{doc}/versions?after=SEQ&limit=N``: restore points, newest
  first (``after``: the ``next`` of the previous page), each with its seq, time and the
  people who changed the document since the previous point.
- ``GET /api/weddings/{id}/docs/{doc}?at=SEQ`` (in :mod:`crdt_server.edge.documents`):
  the document as of a seq.
- ``POST /api/weddings/{id}/docs/{doc}/restore`` ``{"seq": N}``: one new update, made as
  you, that makes the document equal to its state as of ``N`` (its events follow, plus a
  ``document.restored`` event). Needs the ``versions.restore`` capability (default couple
  and planner) and write access to the document.
"""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from crdt_server.actor import Actor
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.bodies import Seq
from crdt_server.edge.documents import (
    capable_principal,
    readable_documents,
    sender_of,
    writer_principal,
)
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall, ApiRoute, QueryParam, json_response
from crdt_server.features.events.log import rfc3339
from crdt_server.features.versions.keeper import NotKept, VersionKeeper

__all__ = ["version_routes"]

_AUTH = (401, 403, 404, 429)


class Version(msgspec.Struct, frozen=True):
    seq: int
    """The document is exactly as it was after this seq (use with ``?at=`` or restore)."""
    at: str
    actors: list[Actor]
    """Who changed the document since the previous restore point."""


class VersionsAnswer(msgspec.Struct, frozen=True):
    versions: list[Version]
    next: int | None


class RestoreRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    seq: Seq


class RestoreAnswer(msgspec.Struct, frozen=True):
    committed: bool
    seq: int
    """The seq whose state the document has again (the newest kept at or before the one
    asked for)."""
    changed: bool
    event: str | None


def _kind(call: ApiCall) -> tuple[str, str]:
    wedding_id, doc = call.path("wedding_id"), call.path("doc")
    if doc not in DOCUMENT_KINDS:
        raise ApiError(404, f"{doc!r} keeps no versions")
    return wedding_id, doc


def _whole(call: ApiCall, name: str, default: int, low: int, high: int) -> int:
    raw = call.request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError.field(400, name, f"must be a whole number from {low} to {high}")
    return int(raw)


async def list_versions(call: ApiCall) -> Response:
    wedding_id, doc = _kind(call)
    if doc not in readable_documents(call, wedding_id):
        raise ApiError(403, f"{doc!r} is not open to you")
    after = _whole(call, "after", 0, 0, 2**62)
    limit = _whole(call, "limit", 50, 1, 500)
    points = await call.state.extension(VersionKeeper).points(
        f"{wedding_id}/{doc}", before=after or None, limit=limit
    )
    versions = [Version(p.seq, rfc3339(p.at), list(p.actors)) for p in points]
    following = points[-1].seq if len(points) == limit else None
    return json_response(VersionsAnswer(versions, following))


async def restore(call: ApiCall) -> Response:
    wedding_id, doc = _kind(call)
    principal = capable_principal(call, wedding_id, "versions.restore")
    writer_principal(call, wedding_id, doc)
    body = call.json(RestoreRequest)
    if body.seq < 0:
        raise ApiError.field(422, "seq", "must be a seq (0 or more)")
    keeper = call.state.extension(VersionKeeper)
    try:
        done = await keeper.restore(wedding_id, doc, body.seq, sender_of(principal))
    except NotKept as exc:
        raise ApiError.field(404, "seq", "no state of this document is kept that far back") from exc
    return json_response(RestoreAnswer(True, done.seq, done.changed, done.event))


def version_routes() -> list[ApiRoute]:
    base = "/api/weddings/{wedding_id}/docs/{doc}"
    return [
        ApiRoute(
            "GET",
            f"{base}/versions",
            "listVersions",
            "Restore points of a document (newest first): seq, time, who changed it since",
            list_versions,
            "read",
            query=(
                QueryParam("after", {"type": "integer", "minimum": 0}, "next of the last page"),
                QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            ),
            response_model=VersionsAnswer,
            errors=(400, *_AUTH, 503),
        ),
        ApiRoute(
            "POST",
            f"{base}/restore",
            "restoreDocument",
            'Make the document equal to its state as of a seq ({"seq": N}): one new update '
            "made as you, merged with concurrent edits",
            restore,
            "write",
            body="json",
            request_model=RestoreRequest,
            response_model=RestoreAnswer,
            errors=(400, *_AUTH, 413, 422, 503),
        ),
    ]
