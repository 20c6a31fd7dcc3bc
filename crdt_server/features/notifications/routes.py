"""Each person's notifications over HTTP: their inbox (newest first, with how many are
unread), marking it read, and their notification settings (participation and email).

Writes count against the ``threads`` rate-limit family
(``CRDT_SERVER_RATE_THREADS_PER_MINUTE``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType
from starlette.responses import Response

from crdt_server.edge.bodies import Page
from crdt_server.edge.params import PageLimit, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Malformed
from crdt_server.features.notifications.extension import Notifications
from crdt_server.features.people import People, member_json, member_principal

__all__ = ["notification_routes"]

_BASE = "/api/weddings/{wedding_id}"
_ERR = (400, 401, 403, 404, 429)

notification_routes = Routes()


class Preferences(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    participation: Literal["all", "mentions", "none"] | None = None
    email: bool | None = None


class NotificationsRead(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ids: Annotated[list[str], msgspec.Meta(max_length=500)] | None = None


class NotificationsAnswer(Page[dict[str, Any], str], frozen=True):
    items: list[dict[str, Any]] = msgspec.field(name="notifications")
    unread: int


class ReadAnswer(msgspec.Struct, frozen=True):
    marked: int


class NotificationsQuery(msgspec.Struct, frozen=True):
    unread: Annotated[bool, Meta(description="only the unread ones")] = False
    after: (
        Annotated[int, Meta(ge=1, le=2**62, description="the `next` of the previous page")]
        | UnsetType
    ) = UNSET
    limit: PageLimit = 50


@notification_routes.put(
    f"{_BASE}/notifications/settings",
    "putNotificationSettings",
    "Your participation setting (all, mentions, none) and whether to get emails",
    family="threads",
    errors=(*_ERR, 413, 422),
)
async def preferences(call: ApiCall, path: WeddingPath, body: Preferences) -> Response:
    principal = await member_principal(call, path.wedding_id)
    member = await call.state.extension(People).set_preferences(
        path.wedding_id, principal.user_id, body.participation, body.email
    )
    return json_response(member_json(member, with_email=True))


@notification_routes.get(
    f"{_BASE}/notifications",
    "listNotifications",
    "Your notifications, newest first, and how many are unread",
    family="read",
    response_model=NotificationsAnswer,
    errors=_ERR,
)
async def list_notifications(
    call: ApiCall, path: WeddingPath, query: NotificationsQuery
) -> Response:
    principal = await member_principal(call, path.wedding_id)
    after = None if isinstance(query.after, UnsetType) else query.after
    items, count, following = await call.state.extension(Notifications).notifications(
        path.wedding_id, principal.user_id, unread_only=query.unread, after=after, limit=query.limit
    )
    return json_response(
        NotificationsAnswer(items, None if following is None else str(following), unread=count)
    )


@notification_routes.post(
    f"{_BASE}/notifications/read",
    "readNotifications",
    'Mark all your notifications read, or {"ids": [...]}',
    family="threads",
    body="json",
    request_model=NotificationsRead,
    response_model=ReadAnswer,
    errors=(*_ERR, 413, 422),
)
async def read_notifications(call: ApiCall, path: WeddingPath) -> Response:
    principal = await member_principal(call, path.wedding_id)
    ids: list[int] | None = None
    # The body is optional (none: mark all read), so it is no ``body`` parameter, which
    # requires one.
    if call.body.strip():
        body = call.json(NotificationsRead)
        if body.ids is not None:
            if not all(i.isdigit() and len(i) < 19 for i in body.ids):
                raise Malformed("notification ids as given by the inbox", field="ids")
            ids = [int(i) for i in body.ids]
    marked = await call.state.extension(Notifications).read_notifications(
        path.wedding_id, principal.user_id, ids
    )
    return json_response(ReadAnswer(marked))
