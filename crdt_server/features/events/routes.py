"""The wedding event stream over HTTP: list, follow (Server-Sent Events), post custom events.

- ``GET /api/weddings/{id}/events?after=SEQ&limit=N&types=guest.*,budget.payment_recorded``
  answers ``{"events": [...], "next": SEQ | null}``.
- ``GET /api/weddings/{id}/events/stream`` is ``text/event-stream``: ``id:`` the seq,
  ``event:`` the type, ``data:`` the event as JSON; urgent and emergency events come
  ahead of any backlog on a lane of their own as well (``event: priority``, no ``id:``,
  :func:`lane_record`); it resumes after ``Last-Event-ID`` (or ``?after=``), that lane's
  events first; it sends a comment every ``SSE_HEARTBEAT_SECONDS``, and ends with an
  ``end`` event (``{"reason": "token_expired" | "token_revoked"}``) when the credential
  expires or is revoked, or the device session it was minted from (its ``sid``) ends
  (here, or in another process: the revocation or the session's end arrives on the bus).
  Ephemeral records (``presence.changed``, :meth:`EventLog.tell`) come between them with
  no ``id:`` line: they are never stored, so never resumed.
  Credentials: ``Authorization: Bearer``, or a one-use ``?ticket=`` from
  ``POST .../events/stream-tickets`` (``EventSource`` cannot send headers, and long-lived
  tokens never go in a stream URL).
- ``POST /api/weddings/{id}/events`` posts a custom event (``custom.*``, ``day.*``).
  Of ``priority: emergency``, the ``events.emergency`` capability is checked instead of
  ``events.post`` (a family member may raise an emergency and post nothing else); it may
  name the timeline ``items`` it concerns, carried in its data as ``items``.

Everyone sees only the events of the documents they may read (and events of no document),
and of events with an audience (a thread's), only those naming them, unless they are the
couple or the planner. A personal namespace's events (``session.*``, :meth:`EventLog.personal`)
are read only by the person they name and the holders of its capability.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from pycrdt import Map
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from crdt_server import clock
from crdt_server.auth.digests import secret_digest
from crdt_server.auth.principals import Principal
from crdt_server.core.operation_keys import IDEMPOTENCY_SECONDS
from crdt_server.documents import DocumentKind
from crdt_server.edge.bodies import Page
from crdt_server.edge.guards import capable_principal, readable_documents, wedding_principal
from crdt_server.edge.params import PageLimit, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, body_priority, json_response
from crdt_server.errors import (
    Conflict,
    Forbidden,
    Impossible,
    Malformed,
    TooLarge,
    TooMany,
    Unauthenticated,
)
from crdt_server.features.events.domain import event_json, readable_event
from crdt_server.features.events.extension import Ephemeral, EventLog
from crdt_server.features.events.settings import EventSettings
from crdt_server.features.events.tables import posted_scope, put_ticket, take_ticket
from crdt_server.names import RESERVED_EVENT_TYPES, Lane, Priority, event_problem
from crdt_server.storage import EventFilter, Gateway, NewEvent, Once, StoredEvent
from crdt_server.times import rfc3339

__all__ = [
    "SEE_EVERY_AUDIENCE",
    "CustomEvent",
    "PostedEvent",
    "custom_event_data",
    "event_routes",
    "lane_record",
    "viewer_of",
]

MAX_TYPE_FILTERS = 50
"""At most this many ``types=`` filters (each one is a term of the store's query)."""
MAX_SEQ = 2**62
"""The largest seq a client may name (the stores keep 64-bit integers)."""
MAX_ITEMS = 50
"""At most this many ``items`` an emergency names."""
MAX_ITEM_ID = 200
TICKET_SECONDS = 60.0
STREAM_RETRY_SECONDS = 5
"""``Retry-After`` when a subject has all its event streams open."""
_BASE = "/api/weddings/{wedding_id}/events"

event_routes = Routes()

_Types = Annotated[
    str,
    Meta(description="types or patterns (`guest.*`), comma separated (at most 50)"),
]


class EventsQuery(msgspec.Struct, frozen=True):
    after: Annotated[int, Meta(ge=0, le=MAX_SEQ, description="the last seq you have")] = 0
    limit: PageLimit = 50
    types: _Types = ""


class StreamQuery(msgspec.Struct, frozen=True):
    after: Annotated[
        int,
        Meta(ge=0, le=MAX_SEQ, description="the last seq you have (Last-Event-ID wins)"),
    ] = 0
    types: _Types = ""
    ticket: Annotated[str, Meta(description="from POST .../stream-tickets")] = ""
    """Read by the identity middleware (the route's ``ticket`` credential), not the handler."""


class CustomEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A custom event: ``type`` in a documented namespace (``custom.*``, ``day.*``)."""

    type: Any
    data: dict[str, Any] = {}
    priority: Priority = "normal"
    doc: DocumentKind | None = None
    items: (
        Annotated[
            list[Annotated[str, Meta(min_length=1, max_length=MAX_ITEM_ID)]],
            Meta(max_length=MAX_ITEMS),
        ]
        | None
    ) = None
    """An emergency's affected timeline items (ids of the wedding's timeline)."""


class EventsAnswer(Page[dict[str, Any], int], frozen=True):
    items: list[dict[str, Any]] = msgspec.field(name="events")


class PostedEvent(msgspec.Struct, frozen=True):
    id: str
    seq: int


class StreamTicket(msgspec.Struct, frozen=True):
    ticket: str
    expires_in: int


class _Grant(msgspec.Struct, frozen=True):
    """What a stream ticket grants (stored hashed, used once)."""

    wedding: str
    sub: str
    docs: list[str]
    expires_at: float | None
    checked_at: float = 0.0
    """When the credential was checked (a revocation since then refuses the ticket)."""
    viewer: str | None = None
    """The reader's audience filter (``None``: every audience)."""
    authenticated: bool = True
    """Whether a token stood behind it (anonymous demo streams share no per-user cap)."""
    role: str = ""
    """The reader's role: fields it may not read are cut from events (:func:`shown_to`)."""
    sid: str | None = None
    """The device session of the token it was minted from (its ``sid``): once that ends,
    the ticket is refused and the stream it opened ends."""
    guest_fields: str | None = None
    """The reader's field set of the guest list (a vendor member's): the fields it leaves
    out are cut from events too."""


SEE_EVERY_AUDIENCE = frozenset({"couple", "planner"})
"""Roles that see every event of the documents they may read, whatever its audience (a
thread's events name its participants; the couple and planner see every thread)."""


def shown_to(
    call: ApiCall, role: str, event: StoredEvent, fields: str | None = None
) -> dict[str, Any]:
    """``event`` as ``role`` with the field set ``fields`` may read it
    (:func:`~.log.readable_event`)."""
    return readable_event(event_json(event), call.state.permissions, role, fields)


def viewer_of(principal: Principal) -> str | None:
    """The ``viewer`` of an event filter for this reader (``None``: every audience)."""
    return None if principal.role in SEE_EVERY_AUDIENCE else principal.user_id


def _types(raw: str) -> tuple[str, ...]:
    """The ``types=`` filters: event types or patterns, comma separated."""
    types = tuple(t.strip() for t in raw.split(",") if t.strip())
    if len(types) > MAX_TYPE_FILTERS:
        raise Malformed(f"at most {MAX_TYPE_FILTERS} types or patterns", field="types")
    for t in types:
        if len(t) > 100 or not all(c.isalnum() or c in "._*" for c in t):
            raise Malformed(f"not an event type or pattern: {t[:100]!r}", field="types")
    return types


@event_routes.get(
    _BASE,
    "listEvents",
    "The wedding's domain events (cursor pages), limited to the documents you may read",
    family="read",
    response_model=EventsAnswer,
    errors=(400, 401, 403, 404, 429),
)
async def list_events(call: ApiCall, path: WeddingPath, query: EventsQuery) -> Response:
    """The wedding's events after ``after``, oldest first, of the documents you may read."""
    wedding_id = path.wedding_id
    docs = readable_documents(call, wedding_id)
    principal = wedding_principal(call, wedding_id, docs)
    viewer = viewer_of(principal)
    where = EventFilter(types=_types(query.types), docs=frozenset(docs), viewer=viewer)
    log = call.state.extension(EventLog)
    events = await log.read(wedding_id, after=query.after, limit=query.limit, where=where)
    # The cursor is the page's last seq, whatever personal events are left out of it.
    following = events[-1].seq if len(events) == query.limit else None
    permissions, role, sub = call.state.permissions, principal.role, principal.user_id
    shown = [
        item
        for item in (shown_to(call, role, e, principal.guest_fields) for e in events)
        if log.may_read(item, permissions, role, sub)
    ]
    return json_response(EventsAnswer(shown, following))


@event_routes.post(
    f"{_BASE}/stream-tickets",
    "createStreamTicket",
    "A one-use ticket (60 s) for the event stream, for EventSource",
    family="read",
    response_model=StreamTicket,
    status=201,
    errors=(401, 403, 404, 429),
)
async def stream_ticket(call: ApiCall, path: WeddingPath) -> Response:
    """A one-use ticket, valid 60 s, for ``GET .../events/stream?ticket=``."""
    grant = _grant_of(call, path.wedding_id)
    ticket = secrets.token_urlsafe(24)
    await put_ticket(
        Gateway.of(call.state.store),
        secret_digest(ticket),
        msgspec.json.encode(grant).decode(),
        clock.now() + TICKET_SECONDS,
    )
    return json_response(StreamTicket(ticket, int(TICKET_SECONDS)), status_code=201)


@event_routes.get(
    f"{_BASE}/stream",
    "streamEvents",
    "Follow the wedding's events as Server-Sent Events",
    family="read",
    accepts=frozenset({"jwt", "ticket"}),
    media_type="text/event-stream",
    errors=(400, 401, 403, 404, 429),
)
async def stream(call: ApiCall, path: WeddingPath, query: StreamQuery) -> Response:
    """Follow the wedding's events as Server-Sent Events."""
    wedding_id = path.wedding_id
    # Checked before a ticket is used up.
    after, types = _resume_after(call, query.after), _types(query.types)
    ticket = call.caller.secret if call.caller.kind == "ticket" else None
    grant = await _ticket_grant(call, wedding_id, ticket) if ticket else _grant_of(call, wedding_id)
    docs, expires_at, viewer = set(grant.docs), grant.expires_at, grant.viewer
    sub, checked_at, counted = grant.sub, grant.checked_at, grant.authenticated
    role, sid, fields = grant.role, grant.sid, grant.guest_fields
    where = EventFilter(types=types, docs=frozenset(docs), viewer=viewer)
    heartbeat = call.state.settings.fragment(EventSettings).sse_heartbeat_seconds
    events = call.state.extension(EventLog)
    revocations = call.state.revocations

    def ended() -> str | None:
        # Memory only (no store read): revocations and ended device sessions are kept here
        # as they happen, in every process (the bus, and a re-read of the store).
        if revocations.revoked_since(sub, wedding_id, checked_at):
            return "token_revoked"
        if sid is not None and revocations.session_ended(sid):
            return "token_revoked"  # its device session ended: signed out, revoked, idle
        if expires_at is not None and clock.now() >= expires_at:
            return "token_expired"
        return None

    def last_word(reason: str) -> ServerSentEvent:
        # The last word of the stream: EventSource clients should not reconnect with the
        # same credential (see the README).
        return ServerSentEvent(data=json.dumps({"reason": reason}), event="end")

    async def generate() -> AsyncIterator[ServerSentEvent]:
        # Ended since it was checked? Looked at once more before following, with no await
        # until the follower is registered: an end from then on wakes it.
        reason = ended()
        if reason is not None:
            yield last_word(reason)
            return
        follow = events.follow_lanes(
            wedding_id,
            after=after,
            where=where,
            heartbeat=heartbeat,
            sub=sub,
            until=expires_at,
            sid=sid,
        )
        try:
            async for laned in follow:
                reason = ended()
                if reason is not None:
                    yield last_word(reason)
                    return
                if laned is None:
                    yield ServerSentEvent(comment="heartbeat")
                    continue
                if isinstance(laned, Ephemeral):
                    told = _ephemeral_event(laned, where)
                    if told is not None:
                        yield told
                    continue
                lane, event = laned
                item = shown_to(call, role, event, fields)
                if not events.may_read(item, call.state.permissions, role, sub):
                    continue
                yield lane_record(lane, event, item)
        finally:
            await follow.aclose()

    if not counted:
        return EventSourceResponse(generate(), ping=None, send_timeout=30)
    # Like WebSockets (CRDT_SERVER_MAX_CONNECTIONS_PER_USER), a person holds only so many
    # streams: each one is a socket, a task and a follower of the event log.
    streams = call.state.event_streams
    if not streams.acquire(sub):
        raise TooMany(
            "too many open event streams for this user; close one first",
            retry_after=STREAM_RETRY_SECONDS,
        )
    return _CountedStream(generate(), lambda: streams.release(sub), ping=None, send_timeout=30)


def _grant_of(call: ApiCall, wedding_id: str) -> _Grant:
    """What the caller's credential lets it follow of the wedding's events, checked now."""
    docs = readable_documents(call, wedding_id)
    principal = wedding_principal(call, wedding_id, docs)
    return _Grant(
        wedding_id,
        principal.user_id,
        sorted(docs),
        principal.expires_at,
        clock.now(),
        viewer_of(principal),
        principal.authenticated,
        principal.role,
        principal.session_id,
        guest_fields=principal.guest_fields,
    )


async def _ticket_grant(call: ApiCall, wedding_id: str, ticket: str) -> _Grant:
    """What stream ticket ``ticket`` grants, using it up; refused when it is unknown, used,
    expired, for another wedding, or its session was revoked or ended since."""
    payload = await take_ticket(Gateway.of(call.state.store), secret_digest(ticket), clock.now())
    if payload is None:
        raise Unauthenticated("unknown, used or expired ticket", field="ticket")
    grant = msgspec.json.decode(payload, type=_Grant)
    if grant.wedding != wedding_id:
        raise Forbidden("this ticket is for another wedding", field="ticket")
    revocations = call.state.revocations
    if revocations.revoked_since(grant.sub, wedding_id, grant.checked_at):
        raise Unauthenticated("the session of this ticket was revoked", field="ticket")
    if grant.sid is not None and revocations.session_ended(grant.sid):
        raise Unauthenticated("the device session of this ticket ended", field="ticket")
    return grant


def _ephemeral_event(record: Ephemeral, where: EventFilter) -> ServerSentEvent | None:
    """``record`` as a stream record without an ``id:`` line (so it moves no
    ``Last-Event-ID``), if the reader may read one of its documents and asked for its type
    (or for every type); else ``None``."""
    if where.docs is not None and not record.docs & where.docs:
        return None
    if where.types and not any(_matches(record.type, t) for t in where.types):
        return None
    data = dict(record.data)
    if where.docs is not None and isinstance(data.get("documents"), list):
        data["documents"] = [d for d in data["documents"] if d in where.docs]
    item = {"type": record.type, "at": rfc3339(record.at), "data": data}
    return ServerSentEvent(data=json.dumps(item), event=record.type)


def _matches(kind: str, pattern: str) -> bool:
    """Whether an event type matches a ``types=`` filter: itself, or ``prefix.*``."""
    return kind.startswith(pattern[:-1]) if pattern.endswith(".*") else kind == pattern


class _CountedStream(EventSourceResponse):
    """An event stream holding one of its subject's slots until it ends, however it ends
    (the client leaves, the credential ends, the server stops)."""

    def __init__(
        self, content: AsyncIterator[ServerSentEvent], release: Callable[[], None], **kw: Any
    ) -> None:
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


PRIORITY_RECORD = "priority"
"""The SSE event name of the urgent lane's records."""


def lane_record(lane: Lane, event: StoredEvent, item: dict[str, Any]) -> ServerSentEvent:
    """One event of the stream as its lane sends it (``item``: the event as the reader may
    read it). The normal lane: ``id:`` the seq, ``event:`` the type. The urgent lane:
    ``event: priority`` and no ``id:`` line (the seq is in the data): by the SSE rules
    every ``id:`` line sets the EventSource's last event ID, so an urgent record carrying
    one would make a reconnect skip the normal lane's backlog before it."""
    if lane == "urgent":
        return ServerSentEvent(data=json.dumps(item), event=PRIORITY_RECORD)
    return ServerSentEvent(data=json.dumps(item), event=event.type, id=str(event.seq))


def _resume_after(call: ApiCall, after: int) -> int:
    """Where a stream resumes: ``Last-Event-ID`` (an EventSource reconnecting), else
    ``?after=``; 400 naming the header unless it is a seq of 0 to ``MAX_SEQ``."""
    last = call.request.headers.get("last-event-id")
    if not last:
        return after
    if not (last.isascii() and last.isdigit()) or len(last) > 19 or int(last) > MAX_SEQ:
        raise Malformed(f"must be an event seq (0 to {MAX_SEQ})", field="Last-Event-ID")
    return int(last)


def custom_event_data(body: CustomEvent, where: str = "") -> str:
    """The data of a custom event as JSON text, once its type and size are checked (422
    or 413 naming the field, under ``where``: ``event.`` for an incoming webhook's)."""
    data = json.dumps(body.data, separators=(",", ":"))
    problem = event_problem(body.type, data)
    if problem is None and body.type in RESERVED_EVENT_TYPES:
        problem = "type", f"{body.type} is made by the server only"
    if problem is not None:
        name, message = problem
        refusal = TooLarge if name == "data" else Impossible
        raise refusal(message, field=f"{where}{name}")
    return data


@event_routes.post(
    _BASE,
    "postEvent",
    "Post a custom event (custom.*, day.*); Idempotency-Key honoured",
    family="events",
    response_model=PostedEvent,
    status=201,
    also=(200,),
    errors=(400, 401, 403, 404, 409, 413, 422, 429),
    priority=body_priority,
)
async def post_event(call: ApiCall, path: WeddingPath, body: CustomEvent) -> Response:
    """Post a custom event; 201 ``{"id", "seq"}``."""
    wedding_id = path.wedding_id
    data = custom_event_data(body)
    docs = readable_documents(call, wedding_id)
    if body.doc is not None and body.doc not in docs:
        raise Forbidden(f"{body.doc!r} is not open to you", field="doc")
    emergency = body.priority == "emergency"
    capability = "events.emergency" if emergency else "events.post"
    principal = capable_principal(call, wedding_id, capability, docs)
    if body.items is not None:
        data = await _with_items(call, wedding_id, body, docs, data)
    event = NewEvent(
        wedding_id,
        body.type,
        data,
        body.doc,
        sub=principal.user_id,
        role=principal.role,
        priority=body.priority,
    )
    key = call.request.headers.get("idempotency-key")
    once = None
    if key is not None:
        if not 1 <= len(key) <= 255:
            raise Malformed("1 to 255 characters", field="Idempotency-Key")
        fingerprint = hashlib.sha256(call.body).hexdigest()
        once = Once(
            posted_scope(wedding_id, principal.user_id),
            key,
            fingerprint,
            clock.now() + IDEMPOTENCY_SECONDS,
        )
    log = call.state.extension(EventLog)
    # An emergency is stored with the notifications it makes, in one transaction.
    if emergency:
        added = await log.raise_emergency(event, once=once)
    else:
        added = await log.record([event], once=once)
    if once is not None and not added.first and added.fingerprint != once.fingerprint:
        raise Conflict("this Idempotency-Key was used with another body")
    stored = added.events[0]
    return json_response(
        PostedEvent(f"{wedding_id}:{stored.seq}", stored.seq),
        status_code=201 if added.first else 200,
    )


async def _with_items(
    call: ApiCall, wedding_id: str, body: CustomEvent, docs: set[str], data: str
) -> str:
    """The event's data with its checked ``items`` (422 naming ``items`` unless each is a
    timeline item id of the wedding, and the event an emergency)."""
    items = body.items or []
    if body.priority != "emergency":
        raise Impossible("only an emergency names items", field="items")
    if "timeline" not in docs:
        raise Forbidden("the timeline is not open to you", field="items")
    found = await call.state.weddings.documents(wedding_id, kinds=("timeline",))
    timeline = found.get("timeline")
    unknown: list[str] = list(dict.fromkeys(items))
    if timeline is not None:
        with timeline.transaction():
            entries = timeline.get("items", type=Map)
            unknown = [i for i in unknown if i not in entries]
    if unknown:
        raise Impossible(
            f"not a timeline item of this wedding: {unknown[0][:100]!r}", field="items"
        )
    shown = json.loads(data)
    shown["items"] = list(dict.fromkeys(items))
    out = json.dumps(shown, separators=(",", ":"))
    if event_problem(body.type, out) is not None:
        raise TooLarge("the event's data with its items is too large", field="items")
    return out
