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
import time
from typing import Annotated, Literal

import msgspec
from starlette.responses import Response

from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.documents import capable_principal, readable_documents
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall, ApiRoute, QueryParam, json_response, wedding_path
from crdt_server.features.events.routes import viewer_of
from crdt_server.features.webhooks.dispatcher import Webhooks
from crdt_server.features.webhooks.endpoints import WebhookEndpoints
from crdt_server.features.webhooks.model import Endpoint, IdempotencyConflict, scope_json
from crdt_server.features.webhooks.safety import UnsafeTarget, check_url, resolve_target
from crdt_server.storage import Once

__all__ = ["webhook_routes"]

CAPABILITY = "webhooks.manage"
MAX_ENDPOINTS = 50
"""Endpoints one wedding may have."""
MAX_PATTERNS = 50
IDEMPOTENCY_SECONDS = 24 * 3600.0


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


class WebhooksAnswer(msgspec.Struct, frozen=True):
    webhooks: list[WebhookItem]
    next: str | None


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


class DeliveriesAnswer(msgspec.Struct, frozen=True):
    deliveries: list[DeliveryItem]
    next: str | None


class QueuedDelivery(msgspec.Struct, frozen=True):
    id: str
    status: str


def _webhooks(call: ApiCall) -> WebhookEndpoints:
    return call.state.extension(Webhooks).manage


def _allow_private(call: ApiCall) -> bool:
    return call.state.extension(Webhooks).allow_private


def _manager(call: ApiCall) -> str:
    wedding_id = wedding_path(call)
    capable_principal(call, wedding_id, CAPABILITY)
    return wedding_id


async def _endpoint(call: ApiCall) -> Endpoint:
    wedding_id = _manager(call)
    endpoint = await _webhooks(call).endpoint(wedding_id, call.path("hook"))
    if endpoint is None:
        raise ApiError(404, "no such webhook endpoint in this wedding")
    return endpoint


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
            raise ApiError.field(
                400, f"events[{i}]", "an event type (guest.added), a prefix (guest.*) or *"
            )
        if pattern not in seen:
            seen.append(pattern)
    return seen


def _limit(call: ApiCall) -> int:
    raw = call.request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ApiError.field(400, "limit", "a whole number from 1 to 500")
    return int(raw)


async def create_webhook(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    # An endpoint receives what its creator may see: the documents they may read, and of
    # a thread's events only those of threads they are in (unless they see every thread).
    docs = readable_documents(call, wedding_id)
    principal = capable_principal(call, wedding_id, CAPABILITY, readable=docs)
    body = call.json(WebhookRequest)
    try:
        check_url(body.url)
    except UnsafeTarget as exc:
        raise ApiError.field(400, "url", str(exc)) from None
    events = _patterns(body.events)
    webhooks = _webhooks(call)
    try:
        await resolve_target(body.url, allow_private=_allow_private(call))
    except UnsafeTarget as exc:
        raise ApiError.field(422, "url", str(exc)) from None
    once = None
    key = call.request.headers.get("idempotency-key")
    if key is not None:
        if not 1 <= len(key) <= 255:
            raise ApiError.field(400, "Idempotency-Key", "1 to 255 characters")
        once = Once(
            f"{wedding_id}:{principal.user_id}:webhooks",
            key,
            hashlib.sha256(call.body).hexdigest(),
            time.time() + IDEMPOTENCY_SECONDS,
        )
    if await webhooks.count(wedding_id) >= MAX_ENDPOINTS:
        raise ApiError(422, f"a wedding has at most {MAX_ENDPOINTS} webhook endpoints")
    try:
        endpoint, secret, first = await webhooks.create(
            wedding_id,
            body.url,
            events,
            body.description,
            docs=None if docs >= set(DOCUMENT_KINDS) else frozenset(docs),
            viewer=viewer_of(principal),
            creator=principal.user_id,
            once=once,
        )
    except IdempotencyConflict as exc:
        raise ApiError(409, str(exc)) from None
    except LookupError:
        raise ApiError(410, "this wedding was erased") from None
    return json_response(CreatedWebhook(endpoint.id, secret), status_code=201 if first else 200)


async def list_webhooks(call: ApiCall) -> Response:
    wedding_id = _manager(call)
    limit = _limit(call)
    after = call.request.query_params.get("after", "")
    found = await _webhooks(call).endpoints(wedding_id, after=after, limit=limit)
    following = found[-1].id if len(found) == limit else None
    return json_response({"webhooks": [e.json() for e in found], "next": following})


async def get_webhook(call: ApiCall) -> Response:
    endpoint = await _endpoint(call)
    health = await _webhooks(call).health(endpoint)
    return json_response({**endpoint.json(), "health": health.json(endpoint)})


def _scope_of_caller(call: ApiCall, wedding_id: str) -> str:
    """The scope of an endpoint the caller answers for: what they may see, and who they are."""
    docs = readable_documents(call, wedding_id)
    principal = capable_principal(call, wedding_id, CAPABILITY, readable=docs)
    shown = None if docs >= set(DOCUMENT_KINDS) else frozenset(docs)
    return scope_json(shown, viewer_of(principal), principal.user_id)


async def update_webhook(call: ApiCall) -> Response:
    endpoint = await _endpoint(call)
    body = call.json(WebhookChanges)
    # Re-enabling a disabled endpoint (its creator revoked or erased, a 410, a pause) makes
    # the caller the one who answers for it: it receives what they may see from now on.
    scope = _scope_of_caller(call, endpoint.wedding) if body.enabled and endpoint.disabled else None
    webhooks = _webhooks(call)
    if body.url is not None:
        try:
            check_url(body.url)
        except UnsafeTarget as exc:
            raise ApiError.field(400, "url", str(exc)) from None
        try:
            await resolve_target(body.url, allow_private=_allow_private(call))
        except UnsafeTarget as exc:
            raise ApiError.field(422, "url", str(exc)) from None
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
        raise ApiError(404, "no such webhook endpoint in this wedding")
    return json_response(changed.json())


async def delete_webhook(call: ApiCall) -> Response:
    wedding_id = _manager(call)
    if not await _webhooks(call).delete(wedding_id, call.path("hook")):
        raise ApiError(404, "no such webhook endpoint in this wedding")
    return Response(status_code=204)


async def rotate_secret(call: ApiCall) -> Response:
    wedding_id = _manager(call)
    hook = call.path("hook")
    secret = await _webhooks(call).rotate(wedding_id, hook)
    if secret is None:
        raise ApiError(404, "no such webhook endpoint in this wedding")
    return json_response(CreatedWebhook(hook, secret))


async def send_test(call: ApiCall) -> Response:
    endpoint = await _endpoint(call)
    if endpoint.disabled:
        raise ApiError(409, f"the endpoint is disabled: {endpoint.disabled}")
    delivery = await _webhooks(call).send_test(endpoint)
    return json_response(QueuedDelivery(delivery, "pending"), status_code=202)


async def list_deliveries(call: ApiCall) -> Response:
    endpoint = await _endpoint(call)
    status = call.request.query_params.get("status")
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise ApiError.field(400, "status", "pending, delivered or failed")
    limit = _limit(call)
    after = call.request.query_params.get("after")
    found = await _webhooks(call).deliveries(endpoint, status=status, after=after, limit=limit)
    following = found[-1].id if len(found) == limit else None
    return json_response({"deliveries": [d.json() for d in found], "next": following})


async def replay_delivery(call: ApiCall) -> Response:
    endpoint = await _endpoint(call)
    webhooks = _webhooks(call)
    delivery = call.path("delivery")
    if await webhooks.delivery(endpoint, delivery) is None:
        raise ApiError(404, "no such delivery for this endpoint")
    if endpoint.disabled:
        raise ApiError(409, f"the endpoint is disabled: {endpoint.disabled}")
    if not await webhooks.replay(endpoint, delivery):
        raise ApiError(409, "the delivery is still pending: it will be attempted anyway")
    return json_response(QueuedDelivery(delivery, "pending"), status_code=202)


def webhook_routes() -> list[ApiRoute]:
    base = "/api/weddings/{wedding_id}/webhooks"
    one = f"{base}/{{hook}}"
    page: tuple[QueryParam, ...] = (
        QueryParam("after", {"type": "string"}, "the last id of the previous page"),
        QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    )
    common = (401, 403, 404)
    routes: list[ApiRoute] = [
        ApiRoute(
            "POST",
            base,
            "createWebhook",
            "Add an outgoing webhook endpoint; its signing secret is shown only here;"
            " Idempotency-Key honoured",
            create_webhook,
            "write",
            body="json",
            request_model=WebhookRequest,
            response_model=CreatedWebhook,
            status=201,
            also=(200,),
            errors=(*common, 409, 422),
        ),
        ApiRoute(
            "GET",
            base,
            "listWebhooks",
            "The wedding's webhook endpoints (without secrets)",
            list_webhooks,
            "read",
            query=page,
            response_model=WebhooksAnswer,
            errors=(400, *common),
        ),
        ApiRoute(
            "GET",
            one,
            "getWebhook",
            "One endpoint with its health: success rate over 24 h, last error, next attempt",
            get_webhook,
            "read",
            response_model=WebhookDetail,
            errors=common,
        ),
        ApiRoute(
            "PATCH",
            one,
            "updateWebhook",
            'Change an endpoint: {"enabled": true} re-enables one disabled by a 410 (or'
            " paused with false) and resumes where it stopped: the delivery answered 410"
            " again (same webhook-id), then the events committed meanwhile",
            update_webhook,
            "write",
            body="json",
            request_model=WebhookChanges,
            response_model=WebhookItem,
            errors=(400, *common, 413, 422),
        ),
        ApiRoute(
            "DELETE",
            one,
            "deleteWebhook",
            "Remove an endpoint with its deliveries",
            delete_webhook,
            "write",
            status=204,
            errors=common,
        ),
        ApiRoute(
            "POST",
            f"{one}/rotate",
            "rotateWebhookSecret",
            "A new signing secret; the old one keeps signing beside it for 24 h",
            rotate_secret,
            "write",
            response_model=CreatedWebhook,
            errors=common,
        ),
        ApiRoute(
            "POST",
            f"{one}/test",
            "testWebhook",
            "Send a webhook.test event to the endpoint",
            send_test,
            "write",
            response_model=QueuedDelivery,
            status=202,
            errors=(*common, 409),
        ),
        ApiRoute(
            "GET",
            f"{one}/deliveries",
            "listWebhookDeliveries",
            "The endpoint's deliveries, newest first (status=failed: the dead letters)",
            list_deliveries,
            "read",
            query=(
                QueryParam(
                    "status", {"type": "string", "enum": ["pending", "delivered", "failed"]}
                ),
                *page,
            ),
            response_model=DeliveriesAnswer,
            errors=(400, *common),
        ),
        ApiRoute(
            "POST",
            f"{one}/deliveries/{{delivery}}/replay",
            "replayWebhookDelivery",
            "Attempt a failed or delivered delivery again (same webhook-id)",
            replay_delivery,
            "write",
            response_model=QueuedDelivery,
            status=202,
            errors=(*common, 409),
        ),
    ]
    return routes
