"""Conversation routes: threads, messages, reactions and read marks (the member directory's
routes are the people feature's, the inbox's the notifications feature's).

Every route answers problem+json on refusal; a thread the caller may not see answers 404
(its existence is not revealed). Writes are the ``threads`` rate-limit family
(``CRDT_SERVER_RATE_THREADS_PER_MINUTE``); ``emergency`` from the couple or planner passes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType
from starlette.responses import Response

from crdt_server.documents import DOCUMENT_KINDS, DocumentKind
from crdt_server.edge.bodies import Page, Subject
from crdt_server.edge.guards import readable_documents
from crdt_server.edge.params import PageLimit, WeddingId, WeddingPath
from crdt_server.edge.ratelimit import Priority
from crdt_server.edge.routing import ApiCall, Routes, body_priority, json_response
from crdt_server.errors import Impossible, Malformed, TooLarge
from crdt_server.features.people import Member, member_principal
from crdt_server.features.threads.extension import MAX_BODY_BYTES, Threads, Viewer

__all__ = ["thread_routes"]

ThreadId = Annotated[str, Meta(min_length=1, max_length=64, description="a thread id")]


ClientId = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]{1,64}$")]
Kind = Literal["general", "vendor", "guest", "seating", "timeline", "budget"]
Status = Literal["open", "resolved", "archived"]
Text = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"),
]


class Anchor(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    doc: DocumentKind
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]


class NewThread(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    subject: Text
    kind: Kind = "general"
    priority: Priority = "normal"
    anchors: Annotated[list[Anchor], msgspec.Meta(max_length=20)] = []
    participants: Annotated[list[Subject], msgspec.Meta(max_length=200)] = []


class ThreadChanges(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    subject: Text | None = None
    status: Status | None = None
    priority: Priority | None = None
    participants: Annotated[list[Subject], msgspec.Meta(max_length=200)] | None = None


class NewMessage(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    body: Annotated[str, msgspec.Meta(min_length=1)]
    reply_to: ClientId | None = None
    priority: Priority | None = None
    """Defaults to the thread's; ``urgent``/``emergency`` notify the couple and planner."""
    author: Any = None
    """Ignored: the author is always the caller (clients that echo a stored message back
    are not refused, and cannot claim anyone else)."""


class MessageEdit(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    body: Annotated[str, msgspec.Meta(min_length=1)]


class Reaction(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    emoji: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    on: bool = True


class ReadMark(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    up_to: ClientId


class ThreadAnswer(msgspec.Struct, frozen=True):
    id: str
    subject: str
    kind: str
    status: str
    priority: str
    anchors: list[dict[str, str]]
    creator: dict[str, str]
    participants: list[dict[str, str]]
    created_at: str
    updated_at: str
    last_seq: int
    unread: int


class UnnotifiedMention(msgspec.Struct, frozen=True):
    """A mention that notified nobody, and why (never a refusal): ``cannot_see_thread``
    (``sub``: a member who may not see the thread), ``not_a_member`` (``sub``: only while
    the member directory is empty), ``ambiguous_name`` (``name``: two members share it),
    ``unknown_member`` (``name``: a plain ``@Name`` that looks meant as a name and names no
    member; with ``sub`` for a link ``@[Name](sub)`` to a sub that is no member)."""

    reason: Literal["cannot_see_thread", "not_a_member", "ambiguous_name", "unknown_member"]
    sub: str | UnsetType = UNSET
    name: str | UnsetType = UNSET


class PostedMessage(msgspec.Struct, frozen=True):
    """The message as ``listMessages`` shows it, and the mentions it could not notify."""

    id: str
    thread: str
    seq: int
    author: dict[str, str]
    body: str
    reply_to: str | None
    mentions: list[str]
    priority: str
    created_at: str
    edited_at: str | None
    deleted: bool
    reactions: dict[str, list[str]]
    unnotified_mentions: list[UnnotifiedMention]


class ThreadsAnswer(Page[dict[str, Any], str], frozen=True):
    items: list[dict[str, Any]] = msgspec.field(name="threads")


class MessagesAnswer(Page[dict[str, Any], int], frozen=True):
    items: list[dict[str, Any]] = msgspec.field(name="messages")


# -- parameters ----------------------------------------------------------------------------


class ThreadPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    thread_id: ThreadId


class MessagePath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    thread_id: ThreadId
    message_id: Annotated[
        str,
        Meta(
            description="the message's client id: 1 to 64 of A-Z a-z 0-9 _ -",
            extra_json_schema={"pattern": "^[A-Za-z0-9_-]{1,64}$"},
        ),
    ]
    """Checked by :func:`_message_id`: an id the client chose badly is a 400 naming it (a
    mistake in what it sends), not a 404; the pattern is only documented."""


class ThreadsQuery(msgspec.Struct, frozen=True):
    status: Status | UnsetType = UNSET
    kind: Kind | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    anchor: Annotated[str, Meta(description="doc:id, e.g. seating:t4")] = ""
    """Checked by the handler, whose message shows the form."""
    participant: Annotated[str, Meta(description="only threads this member is in")] | UnsetType = (
        UNSET
    )
    q: (
        Annotated[
            str, Meta(max_length=200, description="full-text search over subjects and messages")
        ]
        | UnsetType
    ) = UNSET
    after: Annotated[str, Meta(description="the `next` of the previous page")] = ""
    limit: PageLimit = 50


class MessagesQuery(msgspec.Struct, frozen=True):
    after: Annotated[int, Meta(ge=0, le=2**62, description="the last seq you have")] = 0
    limit: PageLimit = 50


thread_routes = Routes()
_BASE = "/api/weddings/{wedding_id}"
_THREADS = f"{_BASE}/threads"
_ONE = f"{_THREADS}/{{thread_id}}"
_MESSAGE = f"{_ONE}/messages/{{message_id}}"
_ERR = (400, 401, 403, 404, 429)


# -- helpers -------------------------------------------------------------------------------


def _threads(call: ApiCall) -> Threads:
    return call.state.extension(Threads)


async def _viewer(call: ApiCall, wedding: str) -> Viewer:
    docs = readable_documents(call, wedding)
    principal = await member_principal(call, wedding, docs)
    moderator = call.state.permissions.can(principal.role, "threads.moderate")
    return Viewer(principal.actor, frozenset(docs), moderator)


def _message_id(path: MessagePath) -> str:
    mid = path.message_id
    if not (1 <= len(mid) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in mid)):
        raise Malformed("1 to 64 of A-Z a-z 0-9 _ -", field="message_id")
    return mid


def _body_text(body: str) -> str:
    if len(body.encode()) > MAX_BODY_BYTES:
        raise TooLarge(f"at most {MAX_BODY_BYTES} bytes", field="body")
    if not body.strip():
        raise Impossible("must not be blank", field="body")
    return body


# -- threads -------------------------------------------------------------------------------


@thread_routes.post(
    _THREADS,
    "createThread",
    "Start a thread (the creator is always a participant); Idempotency-Key honoured",
    family="threads",
    response_model=ThreadAnswer,
    status=201,
    also=(200,),
    errors=(*_ERR, 409, 413, 422),
    priority=body_priority,
)
async def create_thread(call: ApiCall, path: WeddingPath, body: NewThread) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    key = call.request.headers.get("idempotency-key")
    once = None
    if key is not None:
        if not 1 <= len(key) <= 255:
            raise Malformed("1 to 255 characters", field="Idempotency-Key")
        once = (key, hashlib.sha256(call.body).hexdigest())
    thread, created = await _threads(call).create_thread(
        path.wedding_id,
        viewer,
        subject=body.subject,
        kind=body.kind,
        priority=body.priority,
        anchors=[{"doc": a.doc, "id": a.id} for a in body.anchors],
        participants=list(body.participants),
        once=once,
    )
    return json_response(thread, status_code=201 if created else 200)


def _cursor(value: tuple[float, str] | None) -> str | None:
    if value is None:
        return None
    raw = msgspec.json.encode([value[0], value[1]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(raw: str) -> tuple[float, str] | None:
    """The position a ``next`` cursor names (400 naming ``after`` for anything else: only
    the server makes them)."""
    if not raw:
        return None
    try:
        at, tid = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return float(at), str(tid)
    except (ValueError, TypeError, msgspec.DecodeError) as exc:
        raise Malformed("not a cursor of this list", field="after") from exc


def _given(value: str | UnsetType) -> str | None:
    return None if isinstance(value, UnsetType) else value


@thread_routes.get(
    _THREADS,
    "listThreads",
    "Threads you may see, latest activity first, with your unread count",
    family="read",
    response_model=ThreadsAnswer,
    errors=_ERR,
)
async def list_threads(call: ApiCall, path: WeddingPath, query: ThreadsQuery) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    anchor = None
    if query.anchor:
        doc, _, entry = query.anchor.partition(":")
        if not entry:
            raise Malformed("doc:id, e.g. seating:t4", field="anchor")
        anchor = (doc, entry)
    items, following = await _threads(call).list_threads(
        path.wedding_id,
        viewer,
        status=_given(query.status),
        kind=_given(query.kind),
        priority=_given(query.priority),
        anchor=anchor,
        participant=_given(query.participant),
        q=_given(query.q),
        after=_uncursor(query.after),
        limit=query.limit,
    )
    return json_response(ThreadsAnswer(items, _cursor(following)))


@thread_routes.get(
    _ONE,
    "getThread",
    "One thread (404 if you may not see it)",
    family="read",
    response_model=ThreadAnswer,
    errors=_ERR,
)
async def get_thread(call: ApiCall, path: ThreadPath) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    return json_response(await _threads(call).thread(path.wedding_id, path.thread_id, viewer))


@thread_routes.patch(
    _ONE,
    "patchThread",
    "Change subject, status, priority or participants",
    family="threads",
    response_model=ThreadAnswer,
    errors=(*_ERR, 413, 422),
    priority=body_priority,
)
async def patch_thread(call: ApiCall, path: ThreadPath, body: ThreadChanges) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not None}
    if not changes:
        raise Malformed("nothing to change", field="body")
    thread = await _threads(call).update_thread(path.wedding_id, path.thread_id, viewer, changes)
    return json_response(thread)


# -- messages ------------------------------------------------------------------------------


@thread_routes.get(
    f"{_ONE}/messages",
    "listMessages",
    "Messages in server order (seq)",
    family="read",
    response_model=MessagesAnswer,
    errors=_ERR,
)
async def list_messages(call: ApiCall, path: ThreadPath, query: MessagesQuery) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    items, following = await _threads(call).messages(
        path.wedding_id, path.thread_id, viewer, after=query.after, limit=query.limit
    )
    return json_response(MessagesAnswer(items, following))


@thread_routes.put(
    _MESSAGE,
    "putMessage",
    "Post a message under a client id: 201 the first time, 200 with the same message"
    " after, 409 if the id holds another one; unnotified_mentions lists the mentions that"
    " notified nobody and why (a member who may not see the thread, a name two members"
    " share, a name or link that reaches no member), never a refusal",
    family="threads",
    response_model=PostedMessage,
    status=201,
    also=(200,),
    errors=(*_ERR, 409, 413, 422),
    priority=body_priority,
)
async def put_message(call: ApiCall, path: MessagePath, body: NewMessage) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    message, created = await _threads(call).put_message(
        path.wedding_id,
        path.thread_id,
        _message_id(path),
        viewer,
        body=_body_text(body.body),
        reply_to=body.reply_to,
        priority=body.priority,
        reads=_reads(call),
    )
    return json_response(message, status_code=201 if created else 200)


def _reads(call: ApiCall) -> Callable[[Member], frozenset[str]]:
    """Member -> the documents they may read (the matrix, with a vendor's field set of the
    guest list: one who reads nothing or the counts of it is not told of a thread about a
    guest; a token's own overrides are not known for people other than the caller)."""
    permissions = call.state.permissions

    def reads(member: Member) -> frozenset[str]:
        fields = member.guest_fields
        return frozenset(
            d for d in DOCUMENT_KINDS if permissions.access(member.role, d, None, fields).can_read
        )

    return reads


@thread_routes.patch(
    _MESSAGE,
    "editMessage",
    "Edit your message (moderators: anyone's)",
    family="threads",
    errors=(*_ERR, 409, 413, 422),
)
async def patch_message(call: ApiCall, path: MessagePath, body: MessageEdit) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    message = await _threads(call).edit_message(
        path.wedding_id, path.thread_id, _message_id(path), viewer, _body_text(body.body)
    )
    return json_response(message)


@thread_routes.delete(
    _MESSAGE,
    "deleteMessage",
    "Delete your message (its body is erased, a placeholder stays)",
    family="threads",
    errors=(*_ERR, 409),
)
async def delete_message(call: ApiCall, path: MessagePath) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    message = await _threads(call).edit_message(
        path.wedding_id, path.thread_id, _message_id(path), viewer, None
    )
    return json_response(message)


@thread_routes.post(
    f"{_MESSAGE}/reactions",
    "reactToMessage",
    'Add (or with "on": false remove) your reaction',
    family="threads",
    errors=(*_ERR, 409, 413, 422),
)
async def react(call: ApiCall, path: MessagePath, body: Reaction) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    if any(c.isspace() or ord(c) < 32 for c in body.emoji):
        raise Impossible("one emoji, no spaces", field="emoji")
    message = await _threads(call).react(
        path.wedding_id, path.thread_id, _message_id(path), viewer, body.emoji, body.on
    )
    return json_response(message)


@thread_routes.post(
    f"{_ONE}/read",
    "markThreadRead",
    "Mark everything up to a message read",
    family="threads",
    response_model=ThreadAnswer,
    errors=(*_ERR, 413, 422),
)
async def mark_read(call: ApiCall, path: ThreadPath, body: ReadMark) -> Response:
    viewer = await _viewer(call, path.wedding_id)
    thread = await _threads(call).mark_read(path.wedding_id, path.thread_id, viewer, body.up_to)
    return json_response(thread)
