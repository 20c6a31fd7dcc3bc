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

from typing import Any, Literal

import msgspec
from starlette.responses import Response

from crdt_server.actor import Actor
from crdt_server.documents.operations import OPERATIONS
from crdt_server.edge.bodies import (
    Acknowledgement,
    ConcurrentEdit,
    ConflictItem,
    ConflictsAnswer,
    LostOrKept,
    SuggestedResolution,
)
from crdt_server.edge.documents import (
    capable_principal,
    readable_documents,
    sender_of,
    writer_principal,
)
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall, ApiRoute, json_response
from crdt_server.features.conflicts.keeper import ConflictsKeeper, ConflictView
from crdt_server.features.events.log import rfc3339

__all__ = ["conflict_routes"]

MAX_OPS = 100
_AUTH = (401, 403, 404, 429)


class ResolveRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Either ``ops`` (domain operations, e.g. ``{"op": "unassign_seat", "guest_id":
    "g2"}``) or ``acknowledge: true``."""

    ops: list[dict[str, Any]] | None = None
    acknowledge: bool | None = None


class ResolveAnswer(msgspec.Struct, frozen=True):
    id: str
    status: Literal["resolved", "acknowledged"]
    event: str | None
    """The id of the event recorded (``null`` if another process recorded it, or this
    person had already acknowledged the conflict)."""


def _item(view: ConflictView) -> ConflictItem:
    s = view.suggestion
    keep = s.get("keep")
    return ConflictItem(
        code=view.conflict.code,
        paths=list(view.conflict.paths),
        message=view.conflict.message,
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
        concurrent=None if view.concurrent is None else _concurrent(view.concurrent),
    )


def _side(side: dict[str, Any] | None) -> LostOrKept | None:
    if side is None:
        return None
    actor = side.get("actor")
    return LostOrKept(
        actor=None if not actor else Actor(actor["sub"], actor["role"]),
        value=side.get("value"),
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


async def list_conflicts(call: ApiCall) -> Response:
    wedding_id = call.path("wedding_id")
    docs = readable_documents(call, wedding_id)
    views = await call.state.extension(ConflictsKeeper).views(wedding_id, docs)
    return json_response(ConflictsAnswer(conflicts=[_item(v) for v in views]))


async def resolve(call: ApiCall) -> Response:
    wedding_id, key = call.path("wedding_id"), call.path("conflict_id")
    docs = readable_documents(call, wedding_id)
    principal = capable_principal(call, wedding_id, "conflicts.resolve", docs)
    body = call.json(ResolveRequest)
    if (body.ops is None) == (body.acknowledge is None):
        raise ApiError.field(400, "body", 'give either "ops" or "acknowledge": true')
    if body.acknowledge is False:
        raise ApiError.field(422, "acknowledge", "must be true (or leave it out and give ops)")
    if body.ops is not None:
        if not 1 <= len(body.ops) <= MAX_OPS:
            raise ApiError.field(400, "ops", f"1 to {MAX_OPS} operations")
        for i, op in enumerate(body.ops):
            name = op.get("op")
            if not isinstance(name, str) or name not in OPERATIONS:
                raise ApiError.field(
                    400, f"ops[{i}].op", f"must be one of {', '.join(sorted(OPERATIONS))}"
                )
            writer_principal(call, wedding_id, OPERATIONS[name])
    keeper = call.state.extension(ConflictsKeeper)
    visible = {v.id for v in await keeper.views(wedding_id, docs)}
    if key not in visible:
        raise ApiError(404, "no such conflict (it may be resolved already)")
    sender = sender_of(principal)
    try:
        if body.ops is not None:
            event = await keeper.resolve(wedding_id, key, body.ops, sender)
            return json_response(ResolveAnswer(key, "resolved", event))
        event = await keeper.acknowledge(wedding_id, key, sender.actor)
    except LookupError as exc:
        raise ApiError(404, "no such conflict (it may be resolved already)") from exc
    return json_response(ResolveAnswer(key, "acknowledged", event))


def conflict_routes() -> list[ApiRoute]:
    base = "/api/weddings/{wedding_id}/conflicts"
    return [
        ApiRoute(
            "GET",
            base,
            "readConflicts",
            "Conflicts the CRDT cannot prevent (over-capacity tables, overlaps, overspending), "
            "with stable ids, first-seen times, actors and a suggested resolution",
            list_conflicts,
            "read",
            response_model=ConflictsAnswer,
            errors=(*_AUTH, 503),
        ),
        ApiRoute(
            "POST",
            f"{base}/{{conflict_id}}/resolve",
            "resolveConflict",
            'Resolve a conflict: {"ops": [...]} run as you, or {"acknowledge": true}',
            resolve,
            "write",
            body="json",
            request_model=ResolveRequest,
            response_model=ResolveAnswer,
            errors=(400, *_AUTH, 413, 422, 503),
        ),
    ]
