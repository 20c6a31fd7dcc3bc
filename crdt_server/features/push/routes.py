"""Web Push over HTTP.

- ``GET /api/push/vapid-public-key`` (public): the key browsers subscribe with.
- ``POST /api/weddings/{id}/push-subscriptions`` ``{"endpoint", "keys": {"p256dh",
  "auth"}}``: 201 ``{"id"}`` (the same endpoint again: 200 and its id); at most 10 a
  member; tied to the token's device session (``sid``) when it has one.
- ``GET .../push-subscriptions``: the caller's own (their endpoints' hosts only).
- ``DELETE .../push-subscriptions/{subscription_id}``: 204.
- ``POST .../push-subscriptions/{subscription_id}/test``: 202, a test notification.
- ``GET``/``PUT .../push-settings``: what the caller wants pushed (mentions, urgent
  messages, emergencies, reminders) and their quiet hours.

Every member may use them for themselves; writes count against the ``threads`` family.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, Malformed
from crdt_server.features.people import member_principal
from crdt_server.features.push.domain import unb64url, valid_hour, zone
from crdt_server.features.push.extension import Push
from crdt_server.features.push.tables import Prefs

__all__ = ["push_routes"]

push_routes = Routes()
_BASE = "/api/weddings/{wedding_id}"
_ERR = (400, 401, 403, 404, 429)

SubscriptionId = Annotated[
    str, Meta(pattern="^ps_[0-9a-f]{24}$", description="a push subscription's id")
]
_B64 = "^[A-Za-z0-9_-]+={0,2}$"


class VapidKeyAnswer(msgspec.Struct, frozen=True):
    key: str
    """The P-256 public key, base64url (``applicationServerKey``)."""


class SubscriptionKeys(msgspec.Struct, frozen=True):
    p256dh: Annotated[str, Meta(min_length=80, max_length=100, pattern=_B64)]
    auth: Annotated[str, Meta(min_length=16, max_length=32, pattern=_B64)]


class NewSubscription(msgspec.Struct, frozen=True):
    """What ``PushSubscription.toJSON()`` gives (``expirationTime`` is ignored)."""

    endpoint: Annotated[str, Meta(min_length=1, max_length=2048)]
    keys: SubscriptionKeys
    expirationTime: float | None = None  # noqa: N815  (the browser's name)


class SubscriptionAnswer(msgspec.Struct, frozen=True):
    id: str


class SubscriptionItem(msgspec.Struct, frozen=True):
    id: str
    host: str
    this_device: bool


class SubscriptionsAnswer(msgspec.Struct, frozen=True):
    subscriptions: list[SubscriptionItem]


class SubscriptionPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    subscription_id: SubscriptionId


Hour = Annotated[str, Meta(pattern="^[0-2][0-9]:[0-5][0-9]$", description="HH:MM")]


class QuietHours(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A person's quiet hours (what is not an emergency waits until they end): pushes'
    and texts' alike."""

    start: Hour
    end: Hour
    zone: Annotated[str, Meta(min_length=1, max_length=64)]


def check_quiet_hours(quiet: QuietHours | None) -> None:
    """422 naming the field of ``quiet`` that is no hour of the day or no IANA zone."""
    if quiet is None:
        return
    for name in ("start", "end"):
        if not valid_hour(getattr(quiet, name)):
            raise Impossible("an hour from 00:00 to 23:59", field=f"quiet_hours.{name}")
    if zone(quiet.zone) is None:
        raise Impossible("an IANA time zone (Europe/Paris)", field="quiet_hours.zone")


class PushSettingsBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    mentions: bool = True
    urgent: bool = True
    emergencies: bool = True
    quiet_hours: QuietHours | None = None
    """Non-emergency pushes wait until they end; ``null``: none."""
    reminders: bool = True
    """Reminders of tasks and payments falling due (overdue, due today, due soon)."""


def _push(call: ApiCall) -> Push:
    return call.state.extension(Push)


@push_routes.get(
    "/api/push/vapid-public-key",
    "getVapidPublicKey",
    "The server's VAPID public key, which browsers subscribe to push with",
    family="public",
    security="none",
    response_model=VapidKeyAnswer,
    errors=(),
)
async def vapid_public_key(call: ApiCall) -> Response:
    return json_response(VapidKeyAnswer(_push(call).key.public))


@push_routes.post(
    f"{_BASE}/push-subscriptions",
    "createPushSubscription",
    "Register this browser's push subscription (tied to this device session)",
    family="threads",
    response_model=SubscriptionAnswer,
    status=201,
    errors=(*_ERR, 413, 422),
)
async def create_subscription(call: ApiCall, path: WeddingPath, body: NewSubscription) -> Response:
    principal = await member_principal(call, path.wedding_id)
    for name, text, size in (("p256dh", body.keys.p256dh, 65), ("auth", body.keys.auth, 16)):
        try:
            raw = unb64url(text)
        except ValueError as exc:
            raise Malformed("not base64url", field=f"keys.{name}") from exc
        if len(raw) != size or (name == "p256dh" and raw[0] != 4):
            raise Impossible(f"must be {size} bytes", field=f"keys.{name}")
    id_, new = await _push(call).subscribe(
        path.wedding_id,
        principal.user_id,
        principal.session_id or "",
        body.endpoint,
        body.keys.p256dh,
        body.keys.auth,
    )
    return json_response(SubscriptionAnswer(id_), status_code=201 if new else 200)


@push_routes.get(
    f"{_BASE}/push-subscriptions",
    "listPushSubscriptions",
    "Your push subscriptions in this wedding (their push services' hosts)",
    family="read",
    response_model=SubscriptionsAnswer,
    errors=_ERR,
)
async def list_subscriptions(call: ApiCall, path: WeddingPath) -> Response:
    principal = await member_principal(call, path.wedding_id)
    rows = await _push(call).subscriptions(path.wedding_id, principal.user_id)
    sid = principal.session_id or ""
    items = [
        SubscriptionItem(r.id, urlsplit(r.endpoint).hostname or "", bool(sid) and r.sid == sid)
        for r in rows
    ]
    return json_response(SubscriptionsAnswer(items))


@push_routes.delete(
    f"{_BASE}/push-subscriptions/{{subscription_id}}",
    "deletePushSubscription",
    "Remove one of your push subscriptions",
    family="threads",
    status=204,
    errors=_ERR,
)
async def delete_subscription(call: ApiCall, path: SubscriptionPath) -> Response:
    principal = await member_principal(call, path.wedding_id)
    await _push(call).unsubscribe(path.wedding_id, principal.user_id, path.subscription_id)
    return Response(status_code=204)


@push_routes.post(
    f"{_BASE}/push-subscriptions/{{subscription_id}}/test",
    "testPushSubscription",
    "Send a test notification to one of your push subscriptions",
    family="threads",
    status=202,
    errors=_ERR,
)
async def test_subscription(call: ApiCall, path: SubscriptionPath) -> Response:
    principal = await member_principal(call, path.wedding_id)
    await _push(call).test(path.wedding_id, principal.user_id, path.subscription_id)
    return Response(status_code=202)


def _settings_json(prefs: Prefs) -> PushSettingsBody:
    quiet = (
        QuietHours(prefs.quiet_start, prefs.quiet_end, prefs.zone) if prefs.quiet_start else None
    )
    return PushSettingsBody(
        bool(prefs.mentions),
        bool(prefs.urgent),
        bool(prefs.emergencies),
        quiet,
        reminders=bool(prefs.reminders),
    )


@push_routes.get(
    f"{_BASE}/push-settings",
    "getPushSettings",
    "What you want pushed to your devices, and your quiet hours",
    family="read",
    response_model=PushSettingsBody,
    errors=_ERR,
)
async def get_settings(call: ApiCall, path: WeddingPath) -> Response:
    principal = await member_principal(call, path.wedding_id)
    prefs = await _push(call).prefs(path.wedding_id, principal.user_id)
    return json_response(_settings_json(prefs))


@push_routes.put(
    f"{_BASE}/push-settings",
    "putPushSettings",
    "Choose what is pushed to your devices (emergencies are on unless you turn them off)"
    " and your quiet hours (emergencies are never held)",
    family="threads",
    response_model=PushSettingsBody,
    errors=(*_ERR, 413, 422),
)
async def put_settings(call: ApiCall, path: WeddingPath, body: PushSettingsBody) -> Response:
    principal = await member_principal(call, path.wedding_id)
    quiet = body.quiet_hours
    check_quiet_hours(quiet)
    prefs = Prefs(
        int(body.mentions),
        int(body.urgent),
        int(body.emergencies),
        quiet.start if quiet else "",
        quiet.end if quiet else "",
        quiet.zone if quiet else "",
        reminders=int(body.reminders),
    )
    await _push(call).set_prefs(path.wedding_id, principal.user_id, prefs)
    return json_response(_settings_json(prefs))
