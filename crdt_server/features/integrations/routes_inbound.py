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
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from pycrdt import Doc
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.responses import Response

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.principals import AuthError
from crdt_server.core.hooks import Sender
from crdt_server.documents import DOCUMENT_KINDS, DocumentKind, OperationError, apply_operation
from crdt_server.edge.bodies import Deleted, Page, decode_json
from crdt_server.edge.guards import capable_principal
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, is_admin, json_response
from crdt_server.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Impossible,
    Malformed,
    NotFound,
    Unauthenticated,
)
from crdt_server.features.events import CustomEvent, EventLog, PostedEvent, custom_event_data
from crdt_server.features.integrations.extension import INBOUND_ORIGIN, IntegrationService
from crdt_server.features.integrations.tables import InboundSource
from crdt_server.storage import NewEvent, Once

__all__ = ["inbound_routes"]

SourceName = Annotated[
    str, Meta(pattern="^[a-z0-9][a-z0-9_-]{0,39}$", description="an inbound webhook source's name")
]


MAX_OPS = 500
PENDING_SECONDS = 60.0
"""A delivery still ``pending`` after this long was cut short (the process died): its
fate is read from the store (the marker event) instead of waiting for it."""

Grant = Literal["write", "read", "none"]


class SourceAccess(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """What a source may do: write documents (``write``; ``read`` and ``none`` cannot write)
    and post custom events (``events: write``)."""

    timeline: Grant = "none"
    budget: Grant = "none"
    guests: Grant = "none"
    seating: Grant = "none"
    tasks: Grant = "none"
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


class SourcesAnswer(Page[SourceItem, None], frozen=True):
    items: list[SourceItem] = msgspec.field(name="sources")
    next: None = None


class SourceDeleted(Deleted, frozen=True):
    id: str = msgspec.field(name="source")


class InboundOps(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    doc: DocumentKind
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

    doc: DocumentKind | None = None
    ops: list[dict[str, Any]] | None = None
    event: CustomEvent | None = None


class SourcePath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    source: SourceName


class DeliveryPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    source: Annotated[
        str,
        msgspec.Meta(
            description="a source's name (an unknown one: the 401 of a bad signature)",
            extra_json_schema={"pattern": "^[a-z0-9][a-z0-9_-]{0,39}$"},
        ),
    ]
    """Not :data:`SourceName`: a name no source can have answers what an unknown source
    does (401), so nobody learns which names exist from the status. The pattern is only
    documented (``extra_json_schema``), not checked before the handler."""


inbound_routes = Routes()
_BASE = "/api/weddings/{wedding_id}"
_AUTH = (401, 403, 404, 429)


def _service(call: ApiCall) -> IntegrationService:
    return call.state.extension(IntegrationService)


def _manager(call: ApiCall, wedding_id: str) -> str:
    """Who manages the wedding's sources: ``admin``, or the caller with ``inbound.manage``."""
    if is_admin(call):
        return "admin"
    return capable_principal(call, wedding_id, "inbound.manage").user_id


def _writes(call: ApiCall, wedding_id: str, doc: str) -> bool:
    """Whether the caller (a token) may write ``doc`` of the wedding themselves."""
    claims = call.caller.claims
    if claims is None:
        return False
    try:
        return call.state.authenticator.authorize(claims, wedding_id, doc).can_write
    except AuthError:
        return False


# -- managing sources ---------------------------------------------------------------------


@inbound_routes.post(
    f"{_BASE}/inbound-sources",
    "createInboundSource",
    "Register an incoming webhook source and its access; the secret is shown only here "
    "(inbound.manage, or the admin key)",
    family="write",
    accepts=frozenset({"jwt", "admin"}),
    response_model=SourceCreated,
    status=201,
    errors=(400, *_AUTH, 409, 413, 422),
)
async def create_source(call: ApiCall, path: WeddingPath, body: SourceRequest) -> Response:
    wedding_id = path.wedding_id
    by = _manager(call, wedding_id)
    if by != "admin":
        # Nobody hands out more than they have: each document written needs the creator's
        # own write access to it.
        for doc in DOCUMENT_KINDS:
            if getattr(body.access, doc) == "write":
                if not _writes(call, wedding_id, doc):
                    raise Forbidden("you may not write it yourself", field=f"access.{doc}")
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    source = InboundSource(
        wedding_id,
        body.source,
        secret,
        msgspec.json.encode(body.access).decode(),
        clock.now(),
        by,
    )
    if not await _service(call).rows.add_source(source):
        raise Conflict(f"this wedding already has a source {body.source!r}", field="source")
    return json_response(SourceCreated(body.source, secret, body.access), status_code=201)


@inbound_routes.get(
    f"{_BASE}/inbound-sources",
    "listInboundSources",
    "The wedding's incoming webhook sources (without secrets)",
    family="read",
    accepts=frozenset({"jwt", "admin"}),
    response_model=SourcesAnswer,
    errors=_AUTH,
)
async def list_sources(call: ApiCall, path: WeddingPath) -> Response:
    _manager(call, path.wedding_id)
    found = await _service(call).rows.sources(path.wedding_id)
    items = [
        SourceItem(
            s.source, msgspec.json.decode(s.access, type=SourceAccess), s.created_at, s.created_by
        )
        for s in found
    ]
    return json_response(SourcesAnswer(items, None))


@inbound_routes.delete(
    f"{_BASE}/inbound-sources/{{source}}",
    "deleteInboundSource",
    "Remove an incoming webhook source (its deliveries are refused from then on)",
    family="write",
    accepts=frozenset({"jwt", "admin"}),
    response_model=SourceDeleted,
    errors=_AUTH,
)
async def delete_source(call: ApiCall, path: SourcePath) -> Response:
    _manager(call, path.wedding_id)
    if not await _service(call).rows.delete_source(path.wedding_id, path.source):
        raise NotFound("no such source")
    return json_response(SourceDeleted(path.source, True))


# -- receiving ----------------------------------------------------------------------------


_NOBODYS_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
"""Verifies the deliveries to a source that does not exist (none ever verifies)."""


def _unverified() -> Unauthenticated:
    return Unauthenticated("the webhook signature does not verify")


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
        raise Malformed("1 to 255 printable characters", field="webhook-id")
    return webhook_id


def _parse(body: bytes) -> InboundOps | InboundEvent:
    decoded = decode_json(body, dict[str, Any])
    if "event" in decoded:
        return decode_json(body, InboundEvent)
    if "ops" in decoded or "doc" in decoded:
        return decode_json(body, InboundOps)
    raise Impossible('either {"doc", "ops"} or {"event"}', field="body")


@inbound_routes.post(
    f"{_BASE}/inbound/{{source}}",
    "receiveWebhook",
    "An incoming Standard Webhook: {doc, ops} (all or nothing) or {event}; "
    "a replayed webhook-id answers the first answer and applies nothing",
    family="write",
    security="none",
    # No signature at all is refused by the handler like a bad one (one answer).
    accepts=frozenset({"signature", "none"}),
    # The body is decoded after the signature verifies (:func:`_parse`), not before the
    # handler: a bad signature answers 401 whatever the body.
    body="json",
    request_model=InboundBody,
    response_model=InboundAnswer,
    errors=(400, 401, 403, 404, 409, 413, 422, 429, 503),
)
async def receive(call: ApiCall, path: DeliveryPath) -> Response:
    wedding_id, name = path.wedding_id, path.source
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
    seen = await rows.claim(wedding_id, name, webhook_id, clock.now())
    if seen is not None and seen.state == "pending":
        if clock.now() - seen.at < PENDING_SECONDS:
            raise Conflict("this webhook-id is being processed; retry later", retry_after=5)
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
        if isinstance(exc, DomainError | OperationError) or isinstance(body, InboundEvent):
            await rows.release(wedding_id, name, webhook_id)
        raise
    await rows.finish(wedding_id, name, webhook_id, msgspec.json.encode(answer).decode())
    return json_response(answer, status_code=200)


def _sender(source: str, webhook_id: str) -> Sender:
    # The origin carries the delivery: the commit stores its marker event (see
    # crdt_server.features.integrations.extension).
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
        raise Forbidden(f"source {source!r} may not write {body.doc!r}", field="doc")
    if not 1 <= len(body.ops) <= MAX_OPS:
        raise Impossible(f"1 to {MAX_OPS} operations", field="ops")
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
                    refusal = Malformed if exc.reason == "malformed" else Impossible
                    raise refusal(
                        f"{where}: {exc.message} (no operation was applied)",
                        fields=[(where, exc.message)],
                    ) from None
        return results

    # Each operation is checked against what the ones before it wrote: a batch refused
    # half way is run on a copy of the document, thrown away (one operation checks first).
    results = await call.state.weddings.edit(
        f"{wedding_id}/{body.doc}", change, sender, copy=len(body.ops) > 1
    )
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
        raise Forbidden(f"source {source!r} may not post events", field="event")
    event = body.event
    data = custom_event_data(event, "event.")
    if event.doc is not None and getattr(access, event.doc) == "none":
        raise Forbidden(f"{event.doc!r} is not open to {source!r}", field="event.doc")
    actor = _actor(source)
    # The idempotency key makes the event itself once-only, even if the answer below is
    # never recorded.
    once = Once(
        f"{wedding_id}:inbound:{source}",
        webhook_id,
        hashlib.sha256(call.body).hexdigest(),
        clock.now() + 7 * 24 * 3600.0,
    )
    row = NewEvent(
        wedding_id, event.type, data, event.doc, actor.sub, actor.role, priority=event.priority
    )
    added = await call.state.extension(EventLog).record([row], once=once)
    stored = added.events[0]
    return InboundAnswer(webhook_id, event=PostedEvent(f"{wedding_id}:{stored.seq}", stored.seq))
