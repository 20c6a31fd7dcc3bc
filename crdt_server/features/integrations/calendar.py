"""The timeline as an iCalendar feed (RFC 5545), and the feed tokens calendar apps use.

- ``GET /api/weddings/{id}/calendar.ics``: one VEVENT per timeline item: a stable ``UID``,
  ``DTSTAMP`` and ``LAST-MODIFIED`` (when the item last changed), ``CREATED``, a
  ``SEQUENCE`` that grows with each change, ``SUMMARY``, ``LOCATION``, ``STATUS``, the
  vendor (``CONTACT``) and the owner, start and end in UTC. ``ETag`` and
  ``If-None-Match`` (304). Credentials: a feed token (``?token=cal_...``), or a normal
  token that may read the timeline.
- ``POST /api/weddings/{id}/calendar-tokens`` (capability ``calendar.tokens``) answers 201
  ``{"id", "token", "url"}``: an opaque random token, stored as its SHA-256 only, with no
  expiry (calendar apps subscribe for months), good for this feed and nothing else (it is
  not a JWT: every other route, and the WebSocket gate, refuse it with 401). ``GET`` lists
  them, ``DELETE .../calendar-tokens/{token_id}`` revokes one.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated

import icalendar
import msgspec
from starlette.responses import Response

from crdt_server.documents.model import parse_instant
from crdt_server.documents.schema import TimelineItem
from crdt_server.edge.documents import capable_principal, readable_documents
from crdt_server.edge.identity import CALENDAR_TOKEN_PREFIX
from crdt_server.edge.links import public_url
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall, ApiRoute, QueryParam, json_response, wedding_path
from crdt_server.features.integrations.service import IntegrationService
from crdt_server.features.integrations.tables import CalendarToken, FeedItem

__all__ = ["TOKEN_PREFIX", "calendar_routes", "render_calendar"]

TOKEN_PREFIX = CALENDAR_TOKEN_PREFIX
CALENDAR = "text/calendar; charset=utf-8"
_STATUS = {
    "planned": "TENTATIVE",
    "confirmed": "CONFIRMED",
    "done": "CONFIRMED",
    "cancelled": "CANCELLED",
}


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    label: Annotated[str, msgspec.Meta(max_length=100)] = ""
    """What the token is for (``Ann's phone``), to tell tokens apart when revoking."""


class TokenCreated(msgspec.Struct, frozen=True):
    id: str
    token: str
    """Shown only here."""
    url: str
    """The feed's address with the token (``CRDT_SERVER_PUBLIC_URL`` when set)."""
    label: str
    created_at: str


class TokenItem(msgspec.Struct, frozen=True):
    id: str
    label: str
    created_at: str
    created_by: str


class TokensAnswer(msgspec.Struct, frozen=True):
    tokens: list[TokenItem]
    next: None = None


class TokenDeleted(msgspec.Struct, frozen=True):
    id: str
    deleted: bool


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(int(at), UTC)


def _rfc3339(at: float) -> str:
    return _utc(at).isoformat().replace("+00:00", "Z")


def render_calendar(wedding_id: str, items: list[tuple[TimelineItem, FeedItem]]) -> bytes:
    """The feed's bytes: the same items and state always give the same bytes (the ETag)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//crdt-server//wedding timeline//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"Wedding {wedding_id}")
    for item, state in items:
        event = icalendar.Event()
        event.add("uid", f"{wedding_id}.{item.id}@crdt-server")
        # Without METHOD, DTSTAMP is when the information was last revised (RFC 5545
        # 3.8.7.2): the item's change, not the request, so unchanged feeds keep their ETag.
        event.add("dtstamp", _utc(state.modified_at))
        event.add("created", _utc(state.created_at))
        event.add("last-modified", _utc(state.modified_at))
        event.add("sequence", state.sequence)
        event.add("summary", item.title)
        event.add("dtstart", parse_instant(item.start).astimezone(UTC))
        event.add("dtend", parse_instant(item.end).astimezone(UTC))
        event.add("status", _STATUS.get(item.status, "TENTATIVE"))
        if item.location:
            event.add("location", item.location)
        if item.vendor:
            event.add("contact", item.vendor)
            event.add("x-wedding-vendor", item.vendor)
        if item.owner:
            event.add("x-wedding-owner", item.owner)
        lines = [f"Vendor: {item.vendor}"] if item.vendor else []
        lines += [f"Owner: {item.owner}"] if item.owner else []
        if item.notes:
            lines += ["", item.notes] if lines else [item.notes]
        if lines:
            event.add("description", "\n".join(lines))
        calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data


def _matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


async def feed(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    service = call.state.extension(IntegrationService)
    if call.caller.kind == "calendar":
        if await service.rows.token_wedding(_digest(call.caller.secret or "")) != wedding_id:
            raise ApiError.field(401, "token", "unknown or revoked calendar token")
    else:
        if "timeline" not in readable_documents(call, wedding_id):
            raise ApiError(403, "the timeline is not open to you")
    body = render_calendar(wedding_id, await service.feed_items(wedding_id))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(call.request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = f'inline; filename="{wedding_id}.ics"'
    return Response(body, media_type=CALENDAR, headers=headers)


async def create_token(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    principal = capable_principal(call, wedding_id, "calendar.tokens")
    body = call.json(TokenRequest) if call.body else TokenRequest()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = CalendarToken(
        wedding_id, "ct_" + secrets.token_hex(8), time.time(), principal.user_id, body.label
    )
    await call.state.extension(IntegrationService).rows.add_token(record, _digest(token))
    path = f"/api/weddings/{wedding_id}/calendar.ics?token={token}"
    answer = TokenCreated(
        record.id,
        token,
        public_url(call.request, call.state.settings, path),
        record.label,
        _rfc3339(record.created_at),
    )
    return json_response(answer, status_code=201)


async def list_tokens(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    capable_principal(call, wedding_id, "calendar.tokens")
    found = await call.state.extension(IntegrationService).rows.tokens(wedding_id)
    items = [TokenItem(t.id, t.label, _rfc3339(t.created_at), t.created_by) for t in found]
    return json_response(TokensAnswer(items))


async def delete_token(call: ApiCall) -> Response:
    wedding_id = wedding_path(call)
    capable_principal(call, wedding_id, "calendar.tokens")
    token_id = call.path("token_id")
    if not await call.state.extension(IntegrationService).rows.delete_token(wedding_id, token_id):
        raise ApiError(404, "no such calendar token")
    return json_response(TokenDeleted(token_id, True))


def calendar_routes() -> list[ApiRoute]:
    base = "/api/weddings/{wedding_id}"
    auth = (401, 403, 404, 429)
    return [
        ApiRoute(
            "GET",
            f"{base}/calendar.ics",
            "calendarFeed",
            "The timeline as an iCalendar feed (ETag, If-None-Match); ?token= takes a "
            "calendar token, or a token that may read the timeline",
            feed,
            "read",
            accepts=frozenset({"jwt", "calendar"}),
            media_type="text/calendar",
            query=(QueryParam("token", {"type": "string"}, "a calendar token (cal_...)"),),
            errors=(*auth, 503),
            description="Answers 304 without a body when If-None-Match names the current "
            "ETag. Each VEVENT has a stable UID, DTSTAMP and LAST-MODIFIED (the item's last "
            "change), CREATED and a SEQUENCE that grows with each change.",
        ),
        ApiRoute(
            "POST",
            f"{base}/calendar-tokens",
            "createCalendarToken",
            "A calendar-only feed token (no expiry, stored hashed; shown only here)",
            create_token,
            "write",
            body="json",
            request_model=TokenRequest,
            response_model=TokenCreated,
            status=201,
            errors=(400, *auth, 413, 422),
        ),
        ApiRoute(
            "GET",
            f"{base}/calendar-tokens",
            "listCalendarTokens",
            "The wedding's calendar feed tokens (without the tokens)",
            list_tokens,
            "read",
            response_model=TokensAnswer,
            errors=auth,
        ),
        ApiRoute(
            "DELETE",
            f"{base}/calendar-tokens/{{token_id}}",
            "deleteCalendarToken",
            "Revoke a calendar feed token",
            delete_token,
            "write",
            response_model=TokenDeleted,
            errors=auth,
        ),
    ]
