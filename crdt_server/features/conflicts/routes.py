"""Conflicts over HTTP: list them (with stable ids, first-seen times, actors and the
hierarchy's suggestion) and resolve one.

- ``GET /api/weddings/{id}/conflicts`` lists the findings whose entries you may read.
- ``POST /api/weddings/{id}/conflicts/{cid}/resolve`` with ``{"ops": [...]}`` runs domain
  operations as you (each in the document it belongs to) and records ``conflict.resolved``
  with you as its actor; the operations must resolve the conflict (422 otherwise, nothing
  changed). With ``{"acknowledge": true}`` the state stays and ``conflict.acknowledged``
  records that you saw it. Needs the ``conflicts.resolve`` capability (default: couple and
  planner) and write access to the documents the operations change.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta
from starlette.responses import Response

from crdt_server.actor import Actor
from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.documents.operations import OPERATIONS
from crdt_server.documents.redaction import conflict_for_reader, finding_for_reader
from crdt_server.edge.bodies import (
    Acknowledgement,
    ConcurrentEdit,
    ConflictItem,
    ConflictsAnswer,
    LostOrKept,
    SuggestedResolution,
)
from crdt_server.edge.guards import (
    capable_principal,
    readable_documents,
    sender_of,
    wedding_principal,
    writer_principal,
)
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, Malformed, NotFound
from crdt_server.features.conflicts.extension import ConflictsKeeper, ConflictView
from crdt_server.times import rfc3339

__all__ = ["conflict_routes"]

ConflictId = Annotated[
    str,
    Meta(
        pattern="^([a-z_]+\\.[a-z_]+:[0-9a-f]{12}|cw:[0-9a-f]{20})$",
        description="a conflict id",
    ),
]
"""A finding's code and digest (``seating.table_over_capacity:0123456789ab``), or a
concurrent edit's (``cw:`` and 20 hex digits: ``crdt_server.core.overwrites.finding_id``)."""


MAX_OPS = 100
_AUTH = (401, 403, 404, 429)
_BASE = "/api/weddings/{wedding_id}/conflicts"

conflict_routes = Routes()


class ResolveRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Either ``ops`` (domain operations, e.g. ``{"op": "unassign_seat", "guest_id":
    "g2"}``) or ``acknowledge: true``."""

    ops: list[dict[str, Any]] | None = None
    acknowledge: bool | None = None


class ConflictPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    conflict_id: ConflictId


class ResolveAnswer(msgspec.Struct, frozen=True):
    id: str
    status: Literal["resolved", "acknowledged"]
    event: str | None
    """The id of the event recorded (``null`` if another process recorded it, or this
    person had already acknowledged the conflict)."""


def _item(
    view: ConflictView, permissions: PermissionMatrix, role: str, fields: str | None
) -> ConflictItem:
    """A finding as ``role`` (with the field set ``fields``) may read it: the same
    finding for every reader of its documents, without the values of fields the role may
    not read (a schema finding names the field; a concurrent edit keeps its actors and
    times)."""
    s = view.suggestion
    keep = s.get("keep")
    doc = view.conflict.paths[0].split("/")[0] if view.conflict.paths else ""
    hidden = permissions.hidden_fields(role, doc, fields)
    conflict = conflict_for_reader(view.conflict, hidden)
    concurrent = view.concurrent
    if concurrent is not None:
        concurrent = finding_for_reader(
            concurrent, permissions.hidden_fields(role, concurrent["doc"], fields)
        )
    return ConflictItem(
        code=conflict.code,
        paths=list(conflict.paths),
        message=conflict.message,
        id=view.id,
        first_seen=None if view.first_seen is None else rfc3339(view.first_seen),
        actors=[Actor(a["sub"], a["role"]) for a in view.actors],
        acknowledged=[
            Acknowledgement(str(a.get("sub")), str(a.get("role")), _when(a.get("at")))
            for a in view.acknowledged
        ],
        suggestion=SuggestedResolution(
            strategy=str(s.get("strategy")),
            keep=None if not isinstance(keep, dict) else Actor(keep["sub"], keep["role"]),
            ops=list(s.get("ops", [])),
            message=str(s.get("message")),
        ),
        concurrent=None if concurrent is None else _concurrent(concurrent),
    )


def _side(side: dict[str, Any] | None) -> LostOrKept | None:
    if side is None:
        return None
    actor = side.get("actor")
    return LostOrKept(
        actor=None if not actor else Actor(actor["sub"], actor["role"]),
        # Left out (not null) where the reader may not read the field: null is a value.
        value=side["value"] if "value" in side else UNSET,
        at=None if side.get("at") is None else _when(side["at"]),
    )


def _concurrent(view: dict[str, Any]) -> ConcurrentEdit:
    lost = _side(view["lost"])
    assert lost is not None
    return ConcurrentEdit(
        kind=view["kind"],
        doc=view["doc"],
        path=list(view["path"]),
        field=view["field"],
        lost=lost,
        kept=_side(view["kept"]),
        same_actor=bool(view["same_actor"]),
    )


def _when(at: Any) -> str:
    return rfc3339(at) if isinstance(at, int | float) else ""


@conflict_routes.get(
    _BASE,
    "readConflicts",
    "Conflicts the CRDT cannot prevent (over-capacity tables, overlaps, overspending), "
    "with stable ids, first-seen times, actors and a suggested resolution",
    family="read",
    response_model=ConflictsAnswer,
    errors=(*_AUTH, 503),
)
async def list_conflicts(call: ApiCall, path: WeddingPath) -> Response:
    docs = readable_documents(call, path.wedding_id)
    principal = wedding_principal(call, path.wedding_id, docs)
    role, fields = principal.role, principal.guest_fields
    views = await call.state.extension(ConflictsKeeper).views(path.wedding_id, docs)
    permissions = call.state.permissions
    return json_response(
        ConflictsAnswer(conflicts=[_item(v, permissions, role, fields) for v in views])
    )


@conflict_routes.post(
    f"{_BASE}/{{conflict_id}}/resolve",
    "resolveConflict",
    'Resolve a conflict: {"ops": [...]} run as you, or {"acknowledge": true}',
    family="write",
    response_model=ResolveAnswer,
    errors=(400, *_AUTH, 413, 422, 503),
)
async def resolve(call: ApiCall, path: ConflictPath, body: ResolveRequest) -> Response:
    wedding_id, key = path.wedding_id, path.conflict_id
    docs = readable_documents(call, wedding_id)
    principal = capable_principal(call, wedding_id, "conflicts.resolve", docs)
    if (body.ops is None) == (body.acknowledge is None):
        raise Malformed('give either "ops" or "acknowledge": true', field="body")
    if body.acknowledge is False:
        raise Impossible("must be true (or leave it out and give ops)", field="acknowledge")
    if body.ops is not None:
        if not 1 <= len(body.ops) <= MAX_OPS:
            raise Malformed(f"1 to {MAX_OPS} operations", field="ops")
        for i, op in enumerate(body.ops):
            name = op.get("op")
            if not isinstance(name, str) or name not in OPERATIONS:
                raise Malformed(
                    f"must be one of {', '.join(sorted(OPERATIONS))}", field=f"ops[{i}].op"
                )
            writer_principal(call, wedding_id, OPERATIONS[name])
    keeper = call.state.extension(ConflictsKeeper)
    visible = {v.id for v in await keeper.views(wedding_id, docs)}
    if key not in visible:
        raise NotFound("no such conflict (it may be resolved already)")
    sender = sender_of(principal)
    try:
        if body.ops is not None:
            event = await keeper.resolve(wedding_id, key, body.ops, sender)
            return json_response(ResolveAnswer(key, "resolved", event))
        event = await keeper.acknowledge(wedding_id, key, sender.actor)
    except LookupError as exc:
        raise NotFound("no such conflict (it may be resolved already)") from exc
    return json_response(ResolveAnswer(key, "acknowledged", event))
