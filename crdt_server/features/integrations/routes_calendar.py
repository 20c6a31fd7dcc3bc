"""The timeline as an iCalendar feed (RFC 5545), and the feed tokens calendar apps use.

- ``GET /api/weddings/{id}/calendar.ics``: one VEVENT per timeline item: a stable ``UID``,
  ``DTSTAMP`` and ``LAST-MODIFIED`` (when the item last changed), ``CREATED``, a
  ``SEQUENCE`` that grows with each change, ``SUMMARY``, ``LOCATION``, ``STATUS``, the
  vendor (``CONTACT``) and the owner, start and end in UTC. ``ETag`` and
  ``If-None-Match`` (304). Credentials: a feed token (``?token=cal_...``), or a normal
  token that may read the timeline. Scheduled payments with a due date are all-day
  VEVENTs on that date (``Payment due: 1,200.00 EUR``, the category and vendor), for a
  reader who may read the budget: a normal token whose role reads it, or a feed token whose
  creator's role (in the wedding's member directory, now) reads it. The others see no
  payment (so a feed made by a lead shows them, and one whose maker left the directory
  does not). Open tasks with a day (their own, or their offset from the wedding date) are
  all-day VEVENTs on that day (``Task: Book the venue``, the owner's display name), by the
  same rule for the tasks document.
- ``POST /api/weddings/{id}/calendar-tokens`` (capability ``calendar.tokens``) answers 201
  ``{"id", "token", "url"}``: an opaque random token, stored as its SHA-256 only, with no
  expiry (calendar apps subscribe for months), good for this feed and nothing else (it is
  not a JWT: every other route, and the WebSocket gate, refuse it with 401). ``GET`` lists
  them, ``DELETE .../calendar-tokens/{token_id}`` revokes one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server import clock
from crdt_server.auth.digests import secret_digest
from crdt_server.documents.model import parse_instant
from crdt_server.documents.schema import TimelineItem
from crdt_server.edge.bodies import Deleted, Page
from crdt_server.edge.guards import capable_principal, readable_documents
from crdt_server.edge.identity import CALENDAR_TOKEN_PREFIX
from crdt_server.edge.links import PublicUrlMissing, missing_public_url, public_url
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Forbidden, NotFound, Unauthenticated
from crdt_server.features.integrations.extension import DuePayment, DueTask, IntegrationService
from crdt_server.features.integrations.tables import CalendarToken, FeedItem
from crdt_server.features.people import People
from crdt_server.times import rfc3339

__all__ = ["TOKEN_PREFIX", "calendar_routes", "render_calendar"]

CalendarTokenId = Annotated[
    str, Meta(pattern="^ct_[0-9a-f]{16}$", description="a calendar feed token's id")
]


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


class FeedQuery(msgspec.Struct, frozen=True):
    token: Annotated[str, msgspec.Meta(description="a calendar token (cal_...)")] = ""
    """Read by the credential middleware (:mod:`crdt_server.edge.identity`), not here."""


class TokenPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    token_id: CalendarTokenId


class TokenCreated(msgspec.Struct, frozen=True):
    id: str
    token: str
    """Shown only here."""
    url: str
    """The feed's address with the token (``CRDT_SERVER_PUBLIC_URL`` when set)."""
    label: str
    created_at: str
    public_url_missing: PublicUrlMissing = msgspec.UNSET
    """``url`` came from this request's host: the server has no public URL."""


class TokenItem(msgspec.Struct, frozen=True):
    id: str
    label: str
    created_at: str
    created_by: str


class TokensAnswer(Page[TokenItem, None], frozen=True):
    items: list[TokenItem] = msgspec.field(name="tokens")
    next: None = None


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(int(at), UTC)


def render_calendar(
    wedding_id: str,
    items: list[tuple[TimelineItem, FeedItem]],
    payments: list[tuple[DuePayment, FeedItem]] = (),  # type: ignore[assignment]
    tasks: list[tuple[DueTask, FeedItem]] = (),  # type: ignore[assignment]
) -> bytes:
    """The feed's bytes: the same items and state always give the same bytes (the ETag)."""
    import icalendar  # imported by the first feed, not by every process start

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
    for payment, state in payments:
        calendar.add_component(_payment_event(icalendar, wedding_id, payment, state))
    for task, state in tasks:
        calendar.add_component(_task_event(icalendar, wedding_id, task, state))
    data: bytes = calendar.to_ical()
    return data


def _all_day(icalendar: Any, uid: str, state: FeedItem, day: str) -> Any:
    """An all-day event on ``day`` (DTEND the day after, RFC 5545 3.6.1; none on the last
    day a date can hold, which then lasts its one day all the same), transparent (it takes
    no time of anyone's day), with its stable UID and feed state."""
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", _utc(state.modified_at))
    event.add("created", _utc(state.created_at))
    event.add("last-modified", _utc(state.modified_at))
    event.add("sequence", state.sequence)
    start = date.fromisoformat(day)
    event.add("dtstart", start)
    if start < date.max:
        event.add("dtend", start + timedelta(days=1))
    event.add("transp", "TRANSPARENT")
    return event


def _payment_event(icalendar: Any, wedding_id: str, payment: DuePayment, state: FeedItem) -> Any:
    """A scheduled payment: an all-day event on its due date."""
    uid = f"{wedding_id}.payment.{payment.id}@crdt-server"
    event = _all_day(icalendar, uid, state, payment.due)
    to = f" to {payment.vendor}" if payment.vendor else ""
    event.add("summary", f"Payment due: {payment.amount}{to}")
    event.add("categories", ["Payment"])
    event.add("x-wedding-payment", payment.id)
    lines = [f"Category: {payment.category}", f"Amount: {payment.amount}"]
    lines += [f"Vendor: {payment.vendor}"] if payment.vendor else []
    lines += [f"Paid by: {payment.payer}"] if payment.payer else []
    lines += ["", payment.notes] if payment.notes else []
    event.add("description", "\n".join(lines))
    return event


def _task_event(icalendar: Any, wedding_id: str, task: DueTask, state: FeedItem) -> Any:
    """An open task: an all-day event on the day it is due."""
    event = _all_day(icalendar, f"{wedding_id}.task.{task.id}@crdt-server", state, task.due)
    event.add("summary", f"Task: {task.title}")
    event.add("categories", ["Task"])
    event.add("x-wedding-task", task.id)
    owner = task.owner_name or task.owner
    lines = [f"Owner: {owner}"] if owner else []
    if task.notes:
        lines += ["", task.notes] if lines else [task.notes]
    if lines:
        event.add("description", "\n".join(lines))
    return event


_FEED_EXTRAS = ("budget", "tasks")
"""The documents whose entries the feed adds for who may read them: scheduled payments
(the budget) and open tasks."""


async def _maker_reads(call: ApiCall, wedding_id: str, maker: str) -> set[str]:
    """Which of :data:`_FEED_EXTRAS` a feed token's creator may read: their role in the
    member directory now, through the permission matrix (no directory, or not in it:
    none)."""
    people = call.state.find(People)
    if people is None:
        return set()
    member = await people.member(wedding_id, maker)
    if member is None:
        return set()
    access = call.state.permissions.access
    return {doc for doc in _FEED_EXTRAS if access(member.role, doc).can_read}


def _matches(header: str, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, RFC 9110 13.1.2)."""
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


calendar_routes = Routes()
_BASE = "/api/weddings/{wedding_id}"
_AUTH = (401, 403, 404, 429)


@calendar_routes.get(
    f"{_BASE}/calendar.ics",
    "calendarFeed",
    "The timeline as an iCalendar feed (ETag, If-None-Match); ?token= takes a "
    "calendar token, or a token that may read the timeline",
    family="read",
    accepts=frozenset({"jwt", "calendar"}),
    media_type="text/calendar",
    errors=(*_AUTH, 503),
    description="Answers 304 without a body when If-None-Match names the current "
    "ETag. Each VEVENT has a stable UID, DTSTAMP and LAST-MODIFIED (the item's last "
    "change), CREATED and a SEQUENCE that grows with each change. Scheduled payments with "
    "a due date are all-day VEVENTs on that day, for readers who may read the budget; open "
    "tasks with a day likewise, for readers who may read the tasks (a calendar token: its "
    "creator's role in the member directory).",
)
async def feed(call: ApiCall, path: WeddingPath, query: FeedQuery) -> Response:
    wedding_id = path.wedding_id
    service = call.state.extension(IntegrationService)
    if call.caller.kind == "calendar":
        owner = await service.rows.token_owner(secret_digest(call.caller.secret or ""))
        if owner is None or owner[0] != wedding_id:
            raise Unauthenticated("unknown or revoked calendar token", field="token")
        readable = await _maker_reads(call, wedding_id, owner[1])
    else:
        readable = readable_documents(call, wedding_id)
        if "timeline" not in readable:
            raise Forbidden("the timeline is not open to you")
    found = await service.feed(wedding_id)
    body = render_calendar(
        wedding_id,
        found.items,
        found.payments if "budget" in readable else [],
        found.tasks if "tasks" in readable else [],
    )
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if _matches(call.request.headers.get("if-none-match", ""), etag):
        return Response(status_code=304, headers=headers)
    headers["Content-Disposition"] = f'inline; filename="{wedding_id}.ics"'
    return Response(body, media_type=CALENDAR, headers=headers)


@calendar_routes.post(
    f"{_BASE}/calendar-tokens",
    "createCalendarToken",
    "A calendar-only feed token (no expiry, stored hashed; shown only here)",
    family="write",
    body="json",
    request_model=TokenRequest,
    response_model=TokenCreated,
    status=201,
    errors=(400, *_AUTH, 413, 422),
)
async def create_token(call: ApiCall, path: WeddingPath) -> Response:
    wedding_id = path.wedding_id
    principal = capable_principal(call, wedding_id, "calendar.tokens")
    # The body is optional (no label): not a ``body`` parameter, which requires one.
    body = call.json(TokenRequest) if call.body else TokenRequest()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = CalendarToken(
        wedding_id, "ct_" + secrets.token_hex(8), clock.now(), principal.user_id, body.label
    )
    await call.state.extension(IntegrationService).rows.add_token(record, secret_digest(token))
    feed_path = f"/api/weddings/{wedding_id}/calendar.ics?token={token}"
    answer = TokenCreated(
        record.id,
        token,
        public_url(call.request, call.state.settings, feed_path),
        record.label,
        rfc3339(int(record.created_at), "seconds"),
        public_url_missing=missing_public_url(call.state.settings),
    )
    return json_response(answer, status_code=201)


@calendar_routes.get(
    f"{_BASE}/calendar-tokens",
    "listCalendarTokens",
    "The wedding's calendar feed tokens (without the tokens)",
    family="read",
    response_model=TokensAnswer,
    errors=_AUTH,
)
async def list_tokens(call: ApiCall, path: WeddingPath) -> Response:
    capable_principal(call, path.wedding_id, "calendar.tokens")
    found = await call.state.extension(IntegrationService).rows.tokens(path.wedding_id)
    items = [
        TokenItem(t.id, t.label, rfc3339(int(t.created_at), "seconds"), t.created_by) for t in found
    ]
    return json_response(TokensAnswer(items, None))


@calendar_routes.delete(
    f"{_BASE}/calendar-tokens/{{token_id}}",
    "deleteCalendarToken",
    "Revoke a calendar feed token",
    family="write",
    response_model=Deleted,
    errors=_AUTH,
)
async def delete_token(call: ApiCall, path: TokenPath) -> Response:
    capable_principal(call, path.wedding_id, "calendar.tokens")
    rows = call.state.extension(IntegrationService).rows
    if not await rows.delete_token(path.wedding_id, path.token_id):
        raise NotFound("no such calendar token")
    return json_response(Deleted(path.token_id, True))
