"""Incoming webhooks: CRMs and spreadsheets push changes, signed as Standard Webhooks.

- ``POST /api/weddings/{id}/inbound-sources`` ``{"source", "access"}`` (capability
  ``inbound.manage``, or the admin key) answers 201 ``{"source", "secret", "access"}``; the
  secret (``whsec_`` + base64) is shown only there. ``GET`` lists the sources, ``DELETE
  .../inbound-sources/{source}`` removes one.
- ``POST /api/weddings/{id}/inbound/{source}``: the body is verified with the source's
  secret (``webhook-id``, ``webhook-timestamp`` within 5 minutes, ``webhook-signature``),
  then is either ``{"doc", "ops": [...]}`` (the operations of ``POST .../docs/{doc}/ops``,
  applied all or nothing as one update) or ``{"event": {"type", "data", ...}}`` (a custom
  event, the rules of ``POST .../events``). The actor is ``integration:<source>``, with
  the access the source was given. A ``webhook-id`` seen before answers 200 with the first
  answer and applies nothing (senders retry after timeouts).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Annotated, Any, Literal

import msgspec
from pycrdt import Doc
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.responses import Response

from crdt_server.actor import Actor
from crdt_server.core.hooks import Sender
from crdt_server.documents import DOCUMENT_KINDS, OperationError, apply_operation
from crdt_server.edge.bodies import decode_json
from crdt_server.edge.documents import capable_principal
from crdt_server.edge.problems import ApiError, FieldProblem
from crdt_server.edge.routing import (
    ApiCall,
    ApiRoute,
    is_admin,
    json_response,
    wedding_path,
)
from crdt_server.features.events.log import EventLog
from crdt_server.features.events.routes import CustomEvent, PostedEvent, custom_event_data
from crdt_server.features.integrations.service import INBOUND_ORIGIN, IntegrationService
from crdt_server.features.integrations.tables import InboundSource
from crdt_server.storage import NewEvent, Once

__all__ = ["inbound_routes"]

SOURCE_PATTERN = "^[a-z0-9][a-z0-9_-]{0,39}$"
MAX_OPS = 500
PENDING_SECONDS = 60.0
"""A delivery still ``pending`` after this long was cut short (the process died): its
fate is read from the store (the marker event) instead of waiting for it."""

SourceName = Annotated[str, msgspec.Meta(pattern=SOURCE_PATTERN)]
Grant = Literal["write", "read", "none"]


class SourceAccess(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """What a source may do: write documents (``write``; ``read`` and ``none`` cannot write)
    and post custom events (``events: write``)."""

    timeline: Grant = "none"
    budget: Grant = "none"
    guests: Grant = "none"
    seating: Grant = "none"
    events: Literal["write", "none"] = "none"


class SourceRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    source: SourceName
    access: SourceAccess


class SourceCreated(msgspec.Struct, frozen=True):
    source: str
    secret: str
    """Standard Webhooks secret (``whsec_`` + base64); shown only here."""
    access: SourceAccess


class SourceItem(msgspec.Struct, frozen=True):
    source: str
    access: SourceAccess
    created_at: float
    created_by: str


class SourcesAnswer(msgspec.Struct, frozen=True):
    sources: list[SourceItem]
    next: None = None


class SourceDeleted(msgspec.Struct, frozen=True):
    source: str
    deleted: bool


class InboundOps(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    doc: Literal["timeline", "budget", "guests", "seating"]
    ops: list[dict[str, Any]]


class InboundEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    event: CustomEvent


class InboundAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a delivery did: the operations' results, or the event it posted."""

    webhook_id: str
    results: list[dict[str, Any]] | None = None
    event: PostedEvent | None = None


class InboundBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """Either ``{"doc", "ops"}`` or ``{"event"}`` (documentation of both forms; the body is
    decoded as :class:`InboundOps` or :class:`InboundEvent`)."""

    doc: Literal["timeline", "budget", "guests", "seating"] | None = None
    ops: list[dict[str, Any]] | None = None
    event: CustomEvent | None = None


def _service(call: ApiCall) -> IntegrationService:
    return call.state.extension(IntegrationService)


def _manager(call: ApiCall, wedding_id: str) -> str:
    """Who manages the wedding's sources: ``admin``, or the caller with ``inbound.manage``."""
    if is_admin(call):
        return "admin"
    return capable_principal(call, wedding_id, "inbound.manage").user_id


# -- managing sources ---------------------------------------------------------------------


async def create_source(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    body = call.json(SourceRequest)
    by = _manager(call, wedding_id)
    if by != "admin":
        # Nobody hands out more than they have: each document written needs the creator's
        # own write access to it.
        for doc in DOCUMENT_KINDS:
            if getattr(body.access, doc) == "write":
                try:
                    principal = call.principal(wedding_id, doc)
                except ApiError:
                    principal = None
                if principal is None or not principal.can_write:
                    raise ApiError.field(403, f"access.{doc}", "you may not write it yourself")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    source = InboundSource(
        wedding_id,
        body.source,
        secret,
        msgspec.json.encode(body.access).decode(),
        time.time(),
        by,
    )
    if not await _service(call).rows.add_source(source):
        raise ApiError.field(409, "source", f"this wedding already has a source {body.source!r}")
    return json_response(SourceCreated(body.source, secret, body.access), status_code=201)


async def list_sources(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    _manager(call, wedding_id)
    found = await _service(call).rows.sources(wedding_id)
    items = [
        SourceItem(
            s.source, msgspec.json.decode(s.access, type=SourceAccess), s.created_at, s.created_by
        )
        for s in found
    ]
    return json_response(SourcesAnswer(items))


async def delete_source(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    _manager(call, wedding_id)
    name = call.path("source")
    if not await _service(call).rows.delete_source(wedding_id, name):
        raise ApiError(404, "no such source")
    return json_response(SourceDeleted(name, True))


# -- receiving ----------------------------------------------------------------------------


_NOBODYS_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
"""Verifies the deliveries to a source that does not exist (none ever verifies)."""


def _unverified() -> ApiError:
    return ApiError(401, "the webhook signature does not verify")


def _verify(call: ApiCall, secret: str) -> str:
    """The verified ``webhook-id`` (401 unless the signature and timestamp hold)."""
    headers = {k: v for k, v in call.request.headers.items()}
    try:
        Webhook(secret).verify(call.body, headers, json_parse=False)
    except (WebhookVerificationError, ValueError):  # ValueError: bad base64, UTF-8
        # One answer for every failure, and for a source that does not exist: nobody
        # learns which sources exist, nor which part of a signature was wrong.
        raise _unverified() from None
    webhook_id = call.request.headers["webhook-id"]
    if not 1 <= len(webhook_id) <= 255 or not webhook_id.isprintable():
        raise ApiError.field(400, "webhook-id", "1 to 255 printable characters")
    return webhook_id


def _parse(body: bytes) -> InboundOps | InboundEvent:
    decoded = decode_json(body, dict[str, Any])
    if "event" in decoded:
        return decode_json(body, InboundEvent)
    if "ops" in decoded or "doc" in decoded:
        return decode_json(body, InboundOps)
    raise ApiError.field(422, "body", 'either {"doc", "ops"} or {"event"}')


async def receive(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    name = call.path("source")
    service = _service(call)
    source = await service.rows.source(wedding_id, name)
    # An unknown source is verified against a secret nobody has: the same work and the same
    # 401 as a known source with a bad signature.
    webhook_id = _verify(call, source.secret if source is not None else _NOBODYS_SECRET)
    if source is None:
        raise _unverified()
    access = msgspec.json.decode(source.access, type=SourceAccess)
    body = _parse(call.body)
    rows = service.rows
    seen = await rows.claim(wedding_id, name, webhook_id, time.time())
    if seen is not None and seen.state == "pending":
        if time.time() - seen.at < PENDING_SECONDS:
            raise ApiError(
                409,
                "this webhook-id is being processed; retry later",
                headers={"Retry-After": "5"},
            )
        if isinstance(body, InboundOps) and await service.applied(wedding_id, name, webhook_id):
            answer = InboundAnswer(webhook_id)
            await rows.finish(wedding_id, name, webhook_id, msgspec.json.encode(answer).decode())
            return json_response(answer)
        seen = None  # cut short before anything was committed: take it over
    if seen is not None:
        return Response(seen.answer, media_type="application/json")
    try:
        if isinstance(body, InboundOps):
            answer = await _apply_ops(call, wedding_id, name, webhook_id, access, body)
        else:
            answer = await _post_event(call, wedding_id, name, webhook_id, access, body)
    except BaseException as exc:
        # A refusal changed nothing: the sender may fix it and send the same id again. Any
        # other failure may have come after the commit: the claim stays, and the marker
        # event decides once it is stale (an event is once-only by its own key anyway).
        if isinstance(exc, ApiError | OperationError) or isinstance(body, InboundEvent):
            await rows.release(wedding_id, name, webhook_id)
        raise
    await rows.finish(wedding_id, name, webhook_id, msgspec.json.encode(answer).decode())
    return json_response(answer, status_code=200)


def _sender(source: str, webhook_id: str) -> Sender:
    # The origin carries the delivery: the commit stores its marker event (see
    # crdt_server.features.integrations.service).
    return Sender(_actor(source), f"{INBOUND_ORIGIN}{source}:{webhook_id}")


def _actor(source: str) -> Actor:
    return Actor(f"integration:{source}", "integration")


async def _apply_ops(
    call: ApiCall,
    wedding_id: str,
    source: str,
    webhook_id: str,
    access: SourceAccess,
    body: InboundOps,
) -> InboundAnswer:
    if getattr(access, body.doc) != "write":
        raise ApiError.field(403, "doc", f"source {source!r} may not write {body.doc!r}")
    if not 1 <= len(body.ops) <= MAX_OPS:
        raise ApiError.field(422, "ops", f"1 to {MAX_OPS} operations")
    sender = _sender(source, webhook_id)

    def change(doc: Doc[Any]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        # One outer transaction: every operation lands in one update, committed at once.
        with doc.transaction(origin=sender.origin):
            for index, op in enumerate(body.ops):
                try:
                    results.append(apply_operation(doc, body.doc, op, origin=sender.origin))
                except OperationError as exc:
                    where = f"ops[{index}]" + (f".{exc.path}" if exc.path else "")
                    raise ApiError(
                        exc.status,
                        f"{where}: {exc.message} (no operation was applied)",
                        errors=[FieldProblem(where, exc.message)],
                    ) from None
        return results

    results = await call.state.weddings.edit(f"{wedding_id}/{body.doc}", change, sender)
    return InboundAnswer(webhook_id, results=results)


async def _post_event(
    call: ApiCall,
    wedding_id: str,
    source: str,
    webhook_id: str,
    access: SourceAccess,
    body: InboundEvent,
) -> InboundAnswer:
    if access.events != "write":
        raise ApiError.field(403, "event", f"source {source!r} may not post events")
    event = body.event
    data = custom_event_data(event, "event.")
    if event.doc is not None and getattr(access, event.doc) == "none":
        raise ApiError.field(403, "event.doc", f"{event.doc!r} is not open to {source!r}")
    actor = _actor(source)
    # The idempotency key makes the event itself once-only, even if the answer below is
    # never recorded.
    once = Once(
        f"{wedding_id}:inbound:{source}",
        webhook_id,
        hashlib.sha256(call.body).hexdigest(),
        time.time() + 7 * 24 * 3600.0,
    )
    row = NewEvent(
        wedding_id, event.type, data, event.doc, actor.sub, actor.role, priority=event.priority
    )
    added = await call.state.extension(EventLog).record([row], once=once)
    stored = added.events[0]
    return InboundAnswer(webhook_id, event=PostedEvent(f"{wedding_id}:{stored.seq}", stored.seq))


def inbound_routes() -> list[ApiRoute]:
    base = "/api/weddings/{wedding_id}"
    auth = (401, 403, 404, 429)
    return [
        ApiRoute(
            "POST",
            f"{base}/inbound-sources",
            "createInboundSource",
            "Register an incoming webhook source and its access; the secret is shown only here "
            "(inbound.manage, or the admin key)",
            create_source,
            "write",
            accepts=frozenset({"jwt", "admin"}),
            body="json",
            request_model=SourceRequest,
            response_model=SourceCreated,
            status=201,
            errors=(400, *auth, 409, 413, 422),
        ),
        ApiRoute(
            "GET",
            f"{base}/inbound-sources",
            "listInboundSources",
            "The wedding's incoming webhook sources (without secrets)",
            list_sources,
            "read",
            accepts=frozenset({"jwt", "admin"}),
            response_model=SourcesAnswer,
            errors=auth,
        ),
        ApiRoute(
            "DELETE",
            f"{base}/inbound-sources/{{source}}",
            "deleteInboundSource",
            "Remove an incoming webhook source (its deliveries are refused from then on)",
            delete_source,
            "write",
            accepts=frozenset({"jwt", "admin"}),
            response_model=SourceDeleted,
            errors=auth,
        ),
        ApiRoute(
            "POST",
            f"{base}/inbound/{{source}}",
            "receiveWebhook",
            "An incoming Standard Webhook: {doc, ops} (all or nothing) or {event}; "
            "a replayed webhook-id answers the first answer and applies nothing",
            receive,
            "write",
            security="none",
            # No signature at all is refused by the handler like a bad one (one answer).
            accepts=frozenset({"signature", "none"}),
            body="json",
            request_model=InboundBody,
            response_model=InboundAnswer,
            errors=(400, 401, 403, 404, 409, 413, 422, 429, 503),
        ),
    ]
