"""Outgoing webhook endpoints of a wedding over HTTP (Standard Webhooks).

- ``POST /api/weddings/{id}/webhooks`` ``{"url", "events", "description"}``: 201
  ``{"id", "secret"}``; the ``whsec_`` secret is shown only here (and by ``rotate``).
- ``GET .../webhooks`` lists them (never their secrets); ``GET .../webhooks/{hook}`` adds
  its health (success rate over 24 h, last error, next attempt); ``DELETE`` removes it.
- ``PATCH .../webhooks/{hook}`` ``{"enabled", "url", "events", "description"}`` (each
  optional): ``{"enabled": true}`` re-enables an endpoint disabled by a 410, by the
  revocation or erasure of its creator (or paused with ``false``) and resumes deliveries
  where it stopped; whoever re-enables it answers for it from then on (re-assignment).
- ``POST .../{hook}/rotate``: a new secret; the old one keeps signing beside it for 24 h.
- ``POST .../{hook}/test`` queues a ``webhook.test`` delivery.
- ``GET .../{hook}/deliveries?status=failed``; ``POST .../deliveries/{delivery}/replay``.

Only roles with the ``webhooks.manage`` capability (default: couple, planner) may use them.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType
from starlette.responses import Response

from crdt_server import clock
from crdt_server.auth.principals import Principal
from crdt_server.core.operation_keys import IDEMPOTENCY_SECONDS
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.bodies import Page
from crdt_server.edge.guards import capable_principal, readable_documents
from crdt_server.edge.params import PageLimit, WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Conflict, Gone, Impossible, Malformed, NotFound
from crdt_server.features.events import viewer_of
from crdt_server.features.people import People
from crdt_server.features.webhooks.domain import Endpoint, scope_json
from crdt_server.features.webhooks.domain_safety import UnsafeTarget, check_url, resolve_target
from crdt_server.features.webhooks.extension import Webhooks
from crdt_server.features.webhooks.service import WebhookEndpoints
from crdt_server.storage import Once

__all__ = ["webhook_routes"]

HookId = Annotated[
    str, Meta(pattern="^wh_[0-9a-f]{24}$", description="an outgoing webhook endpoint's id")
]
DeliveryId = Annotated[
    str, Meta(pattern="^msg_[0-9a-f]{24}$", description="a webhook delivery's id")
]


CAPABILITY = "webhooks.manage"
MAX_ENDPOINTS = 50
"""Endpoints one wedding may have."""
MAX_PATTERNS = 50


async def _record_creator(call: ApiCall, wedding_id: str, principal: Principal) -> None:
    """Keep the member directory's entry of who answers for an endpoint: the dispatcher
    cuts every delivery to the role the directory gives them then. An operator's token is
    no member and is not recorded (its endpoint keeps its role: :func:`_operator_role`)."""
    people = call.state.find(People)
    if people is not None and principal.authenticated and principal.member:
        await people.see(
            wedding_id, principal.user_id, principal.role, principal.name, principal.email
        )


def _operator_role(principal: Principal) -> str:
    """The role an operator's token (no member) creates an endpoint under; empty for a
    member, whose role the directory gives at each delivery."""
    return "" if principal.member else principal.role


def _all() -> list[str]:
    return ["*"]


class WebhookRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A new endpoint: where to send, which event types (exact, ``guest.*`` or ``*``)."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    events: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_PATTERNS)] = (
        msgspec.field(default_factory=_all)
    )
    description: Annotated[str, msgspec.Meta(max_length=500)] = ""


class WebhookChanges(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What to change on an endpoint (each field optional)."""

    enabled: bool | None = None
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None
    events: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_PATTERNS)] | None = None
    description: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class CreatedWebhook(msgspec.Struct, frozen=True):
    id: str
    secret: str


class WebhookItem(msgspec.Struct, frozen=True):
    id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created_at: str
    old_secret_expires_at: str | None


class WebhookHealth(msgspec.Struct, frozen=True):
    success_rate_24h: float | None
    attempts_24h: int
    failures_24h: int
    last_error: str | None
    last_error_at: str | None
    next_attempt: str | None
    pending: int
    failed: int


class WebhookDetail(WebhookItem, frozen=True):
    health: WebhookHealth


class WebhooksAnswer(Page[WebhookItem, str], frozen=True):
    items: list[WebhookItem] = msgspec.field(name="webhooks")


class DeliveryItem(msgspec.Struct, frozen=True):
    id: str
    type: str
    seq: int | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt: str | None
    last_status: int | None
    last_error: str | None
    last_response: str | None
    created_at: str
    done_at: str | None


class DeliveriesAnswer(Page[DeliveryItem, str], frozen=True):
    items: list[DeliveryItem] = msgspec.field(name="deliveries")


class QueuedDelivery(msgspec.Struct, frozen=True):
    id: str
    status: str


class HookPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    hook: HookId


class DeliveryPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    hook: HookId
    delivery: DeliveryId


class WebhooksQuery(msgspec.Struct, frozen=True):
    after: Annotated[str, msgspec.Meta(description="the last id of the previous page")] = ""
    limit: PageLimit = 50


class DeliveriesQuery(msgspec.Struct, frozen=True):
    status: (
        Annotated[
            Literal["pending", "delivered", "failed"],
            msgspec.Meta(description="only the deliveries in this state (failed: dead letters)"),
        ]
        | UnsetType
    ) = UNSET
    after: (
        Annotated[str, msgspec.Meta(description="the last id of the previous page")] | UnsetType
    ) = UNSET
    limit: PageLimit = 50


webhook_routes = Routes()
_BASE = "/api/weddings/{wedding_id}/webhooks"
_ONE = f"{_BASE}/{{hook}}"
_COMMON = (401, 403, 404)
_NO_ENDPOINT = "no such webhook endpoint in this wedding"


def _webhooks(call: ApiCall) -> WebhookEndpoints:
    return call.state.extension(Webhooks).manage


def _allow_private(call: ApiCall) -> bool:
    return call.state.extension(Webhooks).allow_private


def _manager(call: ApiCall, wedding_id: str) -> None:
    capable_principal(call, wedding_id, CAPABILITY)


async def _endpoint(call: ApiCall, wedding_id: str, hook: str) -> Endpoint:
    _manager(call, wedding_id)
    endpoint = await _webhooks(call).endpoint(wedding_id, hook)
    if endpoint is None:
        raise NotFound(_NO_ENDPOINT)
    return endpoint


def _url_form(url: str) -> None:
    """400 naming ``url`` unless it is an http(s) URL a webhook may have."""
    try:
        check_url(url)
    except UnsafeTarget as exc:
        raise Malformed(str(exc), field="url") from None


async def _url_target(call: ApiCall, url: str) -> None:
    """422 naming ``url`` when its host resolves to an address that may not receive
    webhooks (or does not resolve)."""
    try:
        await resolve_target(url, allow_private=_allow_private(call))
    except UnsafeTarget as exc:
        raise Impossible(str(exc), field="url") from None


def _patterns(events: list[str]) -> list[str]:
    seen: list[str] = []
    for i, pattern in enumerate(events):
        name = pattern[:-2] if pattern.endswith(".*") else pattern
        parts = name.split(".")
        valid = pattern == "*" or (
            len(pattern) <= 100
            and all(p and p.replace("_", "").isalnum() and p.isascii() for p in parts)
        )
        if not valid:
            raise Malformed(
                "an event type (guest.added), a prefix (guest.*) or *", field=f"events[{i}]"
            )
        if pattern not in seen:
            seen.append(pattern)
    return seen


@webhook_routes.post(
    _BASE,
    "createWebhook",
    "Add an outgoing webhook endpoint; its signing secret is shown only here;"
    " Idempotency-Key honoured",
    family="write",
    response_model=CreatedWebhook,
    status=201,
    also=(200,),
    errors=(*_COMMON, 409, 422),
)
async def create_webhook(call: ApiCall, path: WeddingPath, body: WebhookRequest) -> Response:
    wedding_id = path.wedding_id
    # An endpoint receives what its creator may see: the documents they may read, and of
    # a thread's events only those of threads they are in (unless they see every thread).
    docs = readable_documents(call, wedding_id)
    principal = capable_principal(call, wedding_id, CAPABILITY, readable=docs)
    _url_form(body.url)
    events = _patterns(body.events)
    webhooks = _webhooks(call)
    await _url_target(call, body.url)
    once = None
    key = call.request.headers.get("idempotency-key")
    if key is not None:
        if not 1 <= len(key) <= 255:
            raise Malformed("1 to 255 characters", field="Idempotency-Key")
        once = Once(
            f"{wedding_id}:{principal.user_id}:webhooks",
            key,
            hashlib.sha256(call.body).hexdigest(),
            clock.now() + IDEMPOTENCY_SECONDS,
        )
    if await webhooks.count(wedding_id) >= MAX_ENDPOINTS:
        raise Impossible(f"a wedding has at most {MAX_ENDPOINTS} webhook endpoints")
    await _record_creator(call, wedding_id, principal)
    try:
        # IdempotencyConflict (a key reused with another body) is a domain Conflict.
        endpoint, secret, first = await webhooks.create(
            wedding_id,
            body.url,
            events,
            body.description,
            docs=None if docs >= set(DOCUMENT_KINDS) else frozenset(docs),
            viewer=viewer_of(principal),
            creator=principal.user_id,
            role=_operator_role(principal),
            once=once,
        )
    except LookupError:
        raise Gone("this wedding was erased") from None
    return json_response(CreatedWebhook(endpoint.id, secret), status_code=201 if first else 200)


@webhook_routes.get(
    _BASE,
    "listWebhooks",
    "The wedding's webhook endpoints (without secrets)",
    family="read",
    response_model=WebhooksAnswer,
    errors=(400, *_COMMON),
)
async def list_webhooks(call: ApiCall, path: WeddingPath, query: WebhooksQuery) -> Response:
    _manager(call, path.wedding_id)
    found = await _webhooks(call).endpoints(path.wedding_id, after=query.after, limit=query.limit)
    following = found[-1].id if len(found) == query.limit else None
    return json_response({"webhooks": [e.json() for e in found], "next": following})


@webhook_routes.get(
    _ONE,
    "getWebhook",
    "One endpoint with its health: success rate over 24 h, last error, next attempt",
    family="read",
    response_model=WebhookDetail,
    errors=_COMMON,
)
async def get_webhook(call: ApiCall, path: HookPath) -> Response:
    endpoint = await _endpoint(call, path.wedding_id, path.hook)
    health = await _webhooks(call).health(endpoint)
    return json_response({**endpoint.json(), "health": health.json(endpoint)})


async def _scope_of_caller(call: ApiCall, wedding_id: str) -> str:
    """The scope of an endpoint the caller answers for: what they may see, and who they are
    (recorded in the member directory)."""
    docs = readable_documents(call, wedding_id)
    principal = capable_principal(call, wedding_id, CAPABILITY, readable=docs)
    await _record_creator(call, wedding_id, principal)
    shown = None if docs >= set(DOCUMENT_KINDS) else frozenset(docs)
    return scope_json(shown, viewer_of(principal), principal.user_id, _operator_role(principal))


@webhook_routes.patch(
    _ONE,
    "updateWebhook",
    'Change an endpoint: {"enabled": true} re-enables one disabled by a 410 (or'
    " paused with false) and resumes where it stopped: the delivery answered 410"
    " again (same webhook-id), then the events committed meanwhile",
    family="write",
    response_model=WebhookItem,
    errors=(400, *_COMMON, 413, 422),
)
async def update_webhook(call: ApiCall, path: HookPath, body: WebhookChanges) -> Response:
    endpoint = await _endpoint(call, path.wedding_id, path.hook)
    # Re-enabling a disabled endpoint (its creator revoked or erased, a 410, a pause) makes
    # the caller the one who answers for it: it receives what they may see from now on.
    taken_over = body.enabled and endpoint.disabled
    scope = await _scope_of_caller(call, endpoint.wedding) if taken_over else None
    webhooks = _webhooks(call)
    if body.url is not None:
        _url_form(body.url)
        await _url_target(call, body.url)
    events = None if body.events is None else _patterns(body.events)
    changed = await webhooks.update(
        endpoint,
        enabled=body.enabled,
        url=body.url,
        events=events,
        description=body.description,
        scope=scope,
    )
    if changed is None:
        raise NotFound(_NO_ENDPOINT)
    return json_response(changed.json())


@webhook_routes.delete(
    _ONE,
    "deleteWebhook",
    "Remove an endpoint with its deliveries",
    family="write",
    status=204,
    errors=_COMMON,
)
async def delete_webhook(call: ApiCall, path: HookPath) -> Response:
    _manager(call, path.wedding_id)
    if not await _webhooks(call).delete(path.wedding_id, path.hook):
        raise NotFound(_NO_ENDPOINT)
    return Response(status_code=204)


@webhook_routes.post(
    f"{_ONE}/rotate",
    "rotateWebhookSecret",
    "A new signing secret; the old one keeps signing beside it for 24 h",
    family="write",
    response_model=CreatedWebhook,
    errors=_COMMON,
)
async def rotate_secret(call: ApiCall, path: HookPath) -> Response:
    _manager(call, path.wedding_id)
    secret = await _webhooks(call).rotate(path.wedding_id, path.hook)
    if secret is None:
        raise NotFound(_NO_ENDPOINT)
    return json_response(CreatedWebhook(path.hook, secret))


@webhook_routes.post(
    f"{_ONE}/test",
    "testWebhook",
    "Send a webhook.test event to the endpoint",
    family="write",
    response_model=QueuedDelivery,
    status=202,
    errors=(*_COMMON, 409),
)
async def send_test(call: ApiCall, path: HookPath) -> Response:
    endpoint = await _endpoint(call, path.wedding_id, path.hook)
    if endpoint.disabled:
        raise Conflict(f"the endpoint is disabled: {endpoint.disabled}")
    delivery = await _webhooks(call).send_test(endpoint)
    return json_response(QueuedDelivery(delivery, "pending"), status_code=202)


@webhook_routes.get(
    f"{_ONE}/deliveries",
    "listWebhookDeliveries",
    "The endpoint's deliveries, newest first (status=failed: the dead letters)",
    family="read",
    response_model=DeliveriesAnswer,
    errors=(400, *_COMMON),
)
async def list_deliveries(call: ApiCall, path: HookPath, query: DeliveriesQuery) -> Response:
    endpoint = await _endpoint(call, path.wedding_id, path.hook)
    found = await _webhooks(call).deliveries(
        endpoint,
        status=None if isinstance(query.status, UnsetType) else query.status,
        after=None if isinstance(query.after, UnsetType) else query.after,
        limit=query.limit,
    )
    following = found[-1].id if len(found) == query.limit else None
    return json_response({"deliveries": [d.json() for d in found], "next": following})


@webhook_routes.post(
    f"{_ONE}/deliveries/{{delivery}}/replay",
    "replayWebhookDelivery",
    "Attempt a failed or delivered delivery again (same webhook-id)",
    family="write",
    response_model=QueuedDelivery,
    status=202,
    errors=(*_COMMON, 409),
)
async def replay_delivery(call: ApiCall, path: DeliveryPath) -> Response:
    endpoint = await _endpoint(call, path.wedding_id, path.hook)
    webhooks = _webhooks(call)
    if await webhooks.delivery(endpoint, path.delivery) is None:
        raise NotFound("no such delivery for this endpoint")
    if endpoint.disabled:
        raise Conflict(f"the endpoint is disabled: {endpoint.disabled}")
    if not await webhooks.replay(endpoint, path.delivery):
        raise Conflict("the delivery is still pending: it will be attempted anyway")
    return json_response(QueuedDelivery(path.delivery, "pending"), status_code=202)
