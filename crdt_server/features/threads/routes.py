"""Conversation routes: the member directory, threads, messages, read marks, notifications.

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
from starlette.responses import HTMLResponse, Response

from crdt_server.auth.tokens import valid_email, valid_sub
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.edge.bodies import Role, Subject
from crdt_server.edge.documents import readable_documents, wedding_principal
from crdt_server.edge.problems import ApiError
from crdt_server.edge.ratelimit import Priority
from crdt_server.edge.routing import (
    ApiCall,
    ApiRoute,
    QueryParam,
    body_priority,
    is_admin,
    json_response,
    wedding_path,
)
from crdt_server.features.threads.service import (
    MAX_BODY_BYTES,
    ThreadError,
    Threads,
    Viewer,
    member_json,
)

__all__ = ["thread_routes"]

ClientId = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]{1,64}$")]
Kind = Literal["general", "vendor", "guest", "seating", "timeline", "budget"]
Status = Literal["open", "resolved", "archived"]
Doc = Literal["timeline", "budget", "guests", "seating"]
Text = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"),
]


class Anchor(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    doc: Doc
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


class NotificationsRead(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    ids: Annotated[list[str], msgspec.Meta(max_length=500)] | None = None


class MemberBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    role: Role
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None


class Preferences(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    participation: Literal["all", "mentions", "none"] | None = None
    email: bool | None = None


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


class ThreadsAnswer(msgspec.Struct, frozen=True):
    threads: list[dict[str, Any]]
    next: str | None


class MessagesAnswer(msgspec.Struct, frozen=True):
    messages: list[dict[str, Any]]
    next: int | None


class MembersAnswer(msgspec.Struct, frozen=True):
    members: list[dict[str, Any]]


class NotificationsAnswer(msgspec.Struct, frozen=True):
    notifications: list[dict[str, Any]]
    unread: int
    next: str | None


class ReadAnswer(msgspec.Struct, frozen=True):
    marked: int


# -- helpers -------------------------------------------------------------------------------


def _threads(call: ApiCall) -> Threads:
    return call.state.extension(Threads)


async def _viewer(call: ApiCall) -> tuple[str, Viewer]:
    wedding = call.path("wedding_id")
    docs = readable_documents(call, wedding)
    principal = wedding_principal(call, wedding, docs)
    moderator = call.state.permissions.can(principal.role, "threads.moderate")
    if principal.authenticated:
        await _threads(call).people.see(
            wedding, principal.user_id, principal.role, principal.name, principal.email
        )
    return wedding, Viewer(principal.actor, frozenset(docs), moderator)


def _refusal(exc: ThreadError) -> ApiError:
    if exc.field is not None:
        return ApiError.field(exc.status, exc.field, exc.message)
    return ApiError(exc.status, exc.message)


def _body_text(body: str) -> str:
    if len(body.encode()) > MAX_BODY_BYTES:
        raise ApiError.field(413, "body", f"at most {MAX_BODY_BYTES} bytes")
    if not body.strip():
        raise ApiError.field(422, "body", "must not be blank")
    return body


def _int_query(call: ApiCall, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = call.request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ApiError.field(400, name, "must be a whole number") from exc
    if not low <= value <= high:
        raise ApiError.field(400, name, f"must be {low} to {high}")
    return value


def _choice(call: ApiCall, name: str, allowed: tuple[str, ...]) -> str | None:
    value = call.request.query_params.get(name)
    if value is not None and value not in allowed:
        raise ApiError.field(400, name, f"must be one of {', '.join(allowed)}")
    return value


# -- members -------------------------------------------------------------------------------


async def list_members(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    manager = call.state.permissions.can(viewer.actor.role, "members.manage")
    members = await _threads(call).people.members(wedding)
    shown = [member_json(m, with_email=manager or m.sub == viewer.actor.sub) for m in members]
    return json_response(MembersAnswer(shown))


async def put_member(call: ApiCall) -> Response:
    wedding = wedding_path(call)
    if not is_admin(call):
        docs = readable_documents(call, wedding)
        principal = wedding_principal(call, wedding, docs)
        if not call.state.permissions.can(principal.role, "members.manage"):
            raise ApiError(403, f"the {principal.role} role does not have 'members.manage'")
    sub = call.path("sub")
    if not valid_sub(sub):
        raise ApiError.field(400, "sub", "1 to 256 characters, no control characters")
    body = call.json(MemberBody)
    if body.email is not None and not valid_email(body.email):
        raise ApiError.field(422, "email", "must be an email address")
    member, created = await _threads(call).people.put_member(
        wedding, sub, body.role, body.name or sub, body.email
    )
    return json_response(member, status_code=201 if created else 200)


async def erase_member(call: ApiCall) -> Response:
    wedding = wedding_path(call)  # the admin key only (the route's credential kinds)
    sub = call.path("sub")
    # Copies elsewhere first (webhook deliveries); the threads' erasure scrubs the files.
    await call.state.erasures.erase_member(wedding, sub)
    found = await _threads(call).erase_member(wedding, sub)
    if not found:
        raise ApiError(404, "no such member")
    return Response(status_code=204)


async def unsubscribe(call: ApiCall) -> Response:
    wedding = wedding_path(call)
    key = call.request.query_params.get("key", "")
    if not key or not await _threads(call).people.unsubscribe(wedding, call.path("sub"), key):
        raise ApiError.field(404, "key", "unknown unsubscribe link")
    return HTMLResponse(
        "<!doctype html><title>Unsubscribed</title><p>You will get no more notification"
        " emails for this wedding.</p>"
    )


async def preferences(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    body = call.json(Preferences)
    member = await _threads(call).people.set_preferences(
        wedding, viewer.actor.sub, body.participation, body.email
    )
    return json_response(member_json(member, with_email=True))


# -- threads -------------------------------------------------------------------------------


async def create_thread(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    body = call.json(NewThread)
    key = call.request.headers.get("idempotency-key")
    once = None
    if key is not None:
        if not 1 <= len(key) <= 255:
            raise ApiError.field(400, "Idempotency-Key", "1 to 255 characters")
        once = (key, hashlib.sha256(call.body).hexdigest())
    try:
        thread, created = await _threads(call).create_thread(
            wedding,
            viewer,
            subject=body.subject,
            kind=body.kind,
            priority=body.priority,
            anchors=[{"doc": a.doc, "id": a.id} for a in body.anchors],
            participants=list(body.participants),
            once=once,
        )
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(thread, status_code=201 if created else 200)


def _cursor(value: tuple[float, str] | None) -> str | None:
    if value is None:
        return None
    raw = msgspec.json.encode([value[0], value[1]])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(raw: str | None) -> tuple[float, str] | None:
    if not raw:
        return None
    try:
        at, tid = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return float(at), str(tid)
    except (ValueError, TypeError, msgspec.DecodeError) as exc:
        raise ApiError.field(400, "after", "not a cursor of this list") from exc


async def list_threads(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    query = call.request.query_params
    anchor = None
    if query.get("anchor"):
        doc, _, entry = query["anchor"].partition(":")
        if not entry:
            raise ApiError.field(400, "anchor", "doc:id, e.g. seating:t4")
        anchor = (doc, entry)
    q = query.get("q")
    if q is not None and len(q) > 200:
        raise ApiError.field(400, "q", "at most 200 characters")
    limit = _int_query(call, "limit", 50, 1, 500)
    assert limit is not None
    items, following = await _threads(call).list_threads(
        wedding,
        viewer,
        status=_choice(call, "status", ("open", "resolved", "archived")),
        kind=_choice(call, "kind", ("general", "vendor", "guest", "seating", "timeline", "budget")),
        priority=_choice(call, "priority", ("normal", "urgent", "emergency")),
        anchor=anchor,
        participant=query.get("participant"),
        q=q,
        after=_uncursor(query.get("after")),
        limit=limit,
    )
    return json_response(ThreadsAnswer(items, _cursor(following)))


async def get_thread(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    try:
        thread = await _threads(call).thread(wedding, call.path("thread_id"), viewer)
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(thread)


async def patch_thread(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    body = call.json(ThreadChanges)
    changes = {
        k: v
        for k, v in msgspec.structs.asdict(body).items()
        if v is not None and k in msgspec.json.decode(call.body)
    }
    if not changes:
        raise ApiError.field(400, "body", "nothing to change")
    try:
        thread = await _threads(call).update_thread(
            wedding, call.path("thread_id"), viewer, changes
        )
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(thread)


# -- messages ------------------------------------------------------------------------------


async def list_messages(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    after = _int_query(call, "after", 0, 0, 2**62)
    limit = _int_query(call, "limit", 50, 1, 500)
    assert after is not None and limit is not None
    try:
        items, following = await _threads(call).messages(
            wedding, call.path("thread_id"), viewer, after=after, limit=limit
        )
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(MessagesAnswer(items, following))


def _message_id(call: ApiCall) -> str:
    mid = call.path("message_id")
    if not (1 <= len(mid) <= 64 and all(c.isascii() and (c.isalnum() or c in "_-") for c in mid)):
        raise ApiError.field(400, "message_id", "1 to 64 of A-Z a-z 0-9 _ -")
    return mid


async def put_message(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    mid = _message_id(call)
    body = call.json(NewMessage)
    try:
        message, created = await _threads(call).put_message(
            wedding,
            call.path("thread_id"),
            mid,
            viewer,
            body=_body_text(body.body),
            reply_to=body.reply_to,
            priority=body.priority,
            reads=_reads(call),
        )
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(message, status_code=201 if created else 200)


def _reads(call: ApiCall) -> Callable[[str], frozenset[str]]:
    """Role -> the documents the role may read (the matrix; a token's own overrides are
    not known for people other than the caller)."""
    permissions = call.state.permissions

    def reads(role: str) -> frozenset[str]:
        return frozenset(d for d in DOCUMENT_KINDS if permissions.access(role, d).can_read)

    return reads


async def patch_message(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    body = call.json(MessageEdit)
    try:
        message = await _threads(call).edit_message(
            wedding, call.path("thread_id"), _message_id(call), viewer, _body_text(body.body)
        )
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(message)


async def delete_message(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    try:
        message = await _threads(call).edit_message(
            wedding, call.path("thread_id"), _message_id(call), viewer, None
        )
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(message)


async def react(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    body = call.json(Reaction)
    if any(c.isspace() or ord(c) < 32 for c in body.emoji):
        raise ApiError.field(422, "emoji", "one emoji, no spaces")
    try:
        message = await _threads(call).react(
            wedding, call.path("thread_id"), _message_id(call), viewer, body.emoji, body.on
        )
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(message)


async def mark_read(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    body = call.json(ReadMark)
    try:
        thread = await _threads(call).mark_read(wedding, call.path("thread_id"), viewer, body.up_to)
    except ThreadError as exc:
        raise _refusal(exc) from exc
    return json_response(thread)


# -- notifications -------------------------------------------------------------------------


async def list_notifications(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    unread = call.request.query_params.get("unread", "false")
    if unread not in ("true", "false"):
        raise ApiError.field(400, "unread", "true or false")
    after = _int_query(call, "after", None, 1, 2**62)
    limit = _int_query(call, "limit", 50, 1, 500)
    assert limit is not None
    items, count, following = await _threads(call).people.notifications(
        wedding, viewer.actor.sub, unread_only=unread == "true", after=after, limit=limit
    )
    return json_response(
        NotificationsAnswer(items, count, None if following is None else str(following))
    )


async def read_notifications(call: ApiCall) -> Response:
    wedding, viewer = await _viewer(call)
    ids: list[int] | None = None
    if call.body.strip():
        body = call.json(NotificationsRead)
        if body.ids is not None:
            if not all(i.isdigit() and len(i) < 19 for i in body.ids):
                raise ApiError.field(400, "ids", "notification ids as given by the inbox")
            ids = [int(i) for i in body.ids]
    marked = await _threads(call).people.read_notifications(wedding, viewer.actor.sub, ids)
    return json_response(ReadAnswer(marked))


# -- the table -----------------------------------------------------------------------------

_ERR = (400, 401, 403, 404, 429)


def thread_routes() -> list[ApiRoute]:
    base = "/api/weddings/{wedding_id}"
    threads = f"{base}/threads"
    one = f"{threads}/{{thread_id}}"
    message = f"{one}/messages/{{message_id}}"
    paging = (
        QueryParam("after", {"type": "string"}, "the `next` of the previous page"),
        QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    )
    return [
        ApiRoute(
            "GET",
            f"{base}/members",
            "listMembers",
            "The wedding's member directory (emails to managers and oneself)",
            list_members,
            "read",
            response_model=MembersAnswer,
            errors=_ERR,
        ),
        ApiRoute(
            "PUT",
            f"{base}/members/{{sub}}",
            "putMember",
            "Add or replace a member (admin key, couple or planner)",
            put_member,
            "threads",
            accepts=frozenset({"jwt", "admin"}),
            body="json",
            request_model=MemberBody,
            status=201,
            also=(200,),
            errors=(*_ERR, 413, 422),
        ),
        ApiRoute(
            "DELETE",
            f"{base}/members/{{sub}}",
            "eraseMember",
            "Per-person erasure: their messages become placeholders; their entry, reactions,"
            " notifications and thread events go (admin key)",
            erase_member,
            "admin",
            security="admin",
            status=204,
            errors=(401, 403, 404, 429),
        ),
        ApiRoute(
            "GET",
            f"{base}/members/{{sub}}/unsubscribe",
            "unsubscribe",
            "Stop notification emails (the link in every email)",
            unsubscribe,
            "read",
            security="none",
            media_type="text/html",
            query=(QueryParam("key", {"type": "string"}),),
            errors=(404, 429),
        ),
        ApiRoute(
            "POST",
            f"{base}/members/{{sub}}/unsubscribe",
            "unsubscribeOneClick",
            "One-click unsubscribe (RFC 8058)",
            unsubscribe,
            "read",
            security="none",
            media_type="text/html",
            query=(QueryParam("key", {"type": "string"}),),
            errors=(404, 429),
        ),
        ApiRoute(
            "PUT",
            f"{base}/notifications/settings",
            "putNotificationSettings",
            "Your participation setting (all, mentions, none) and whether to get emails",
            preferences,
            "threads",
            body="json",
            request_model=Preferences,
            errors=(*_ERR, 413),
        ),
        ApiRoute(
            "POST",
            threads,
            "createThread",
            "Start a thread (the creator is always a participant); Idempotency-Key honoured",
            create_thread,
            "threads",
            body="json",
            request_model=NewThread,
            response_model=ThreadAnswer,
            status=201,
            also=(200,),
            errors=(*_ERR, 409, 413, 422),
            priority=body_priority,
        ),
        ApiRoute(
            "GET",
            threads,
            "listThreads",
            "Threads you may see, latest activity first, with your unread count",
            list_threads,
            "read",
            response_model=ThreadsAnswer,
            query=(
                QueryParam("status", {"type": "string", "enum": ["open", "resolved", "archived"]}),
                QueryParam("kind", {"type": "string"}),
                QueryParam(
                    "priority", {"type": "string", "enum": ["normal", "urgent", "emergency"]}
                ),
                QueryParam("anchor", {"type": "string"}, "doc:id, e.g. seating:t4"),
                QueryParam("participant", {"type": "string"}),
                QueryParam(
                    "q",
                    {"type": "string", "maxLength": 200},
                    "full-text search over subjects and messages",
                ),
                *paging,
            ),
            errors=_ERR,
        ),
        ApiRoute(
            "GET",
            one,
            "getThread",
            "One thread (404 if you may not see it)",
            get_thread,
            "read",
            response_model=ThreadAnswer,
            errors=_ERR,
        ),
        ApiRoute(
            "PATCH",
            one,
            "patchThread",
            "Change subject, status, priority or participants",
            patch_thread,
            "threads",
            body="json",
            request_model=ThreadChanges,
            response_model=ThreadAnswer,
            errors=(*_ERR, 413, 422),
            priority=body_priority,
        ),
        ApiRoute(
            "GET",
            f"{one}/messages",
            "listMessages",
            "Messages in server order (seq)",
            list_messages,
            "read",
            response_model=MessagesAnswer,
            query=(
                QueryParam("after", {"type": "integer", "minimum": 0}, "the last seq you have"),
                paging[1],
            ),
            errors=_ERR,
        ),
        ApiRoute(
            "PUT",
            message,
            "putMessage",
            "Post a message under a client id: 201 the first time, 200 with the same message"
            " after, 409 if the id holds another one; unnotified_mentions lists the mentioned"
            " members who may not see the thread (reason cannot_see_thread), never notified",
            put_message,
            "threads",
            body="json",
            request_model=NewMessage,
            status=201,
            also=(200,),
            errors=(*_ERR, 409, 413, 422),
            priority=body_priority,
        ),
        ApiRoute(
            "PATCH",
            message,
            "editMessage",
            "Edit your message (moderators: anyone's)",
            patch_message,
            "threads",
            body="json",
            request_model=MessageEdit,
            errors=(*_ERR, 409, 413, 422),
        ),
        ApiRoute(
            "DELETE",
            message,
            "deleteMessage",
            "Delete your message (its body is erased, a placeholder stays)",
            delete_message,
            "threads",
            errors=(*_ERR, 409),
        ),
        ApiRoute(
            "POST",
            f"{message}/reactions",
            "reactToMessage",
            'Add (or with "on": false remove) your reaction',
            react,
            "threads",
            body="json",
            request_model=Reaction,
            errors=(*_ERR, 409, 413, 422),
        ),
        ApiRoute(
            "POST",
            f"{one}/read",
            "markThreadRead",
            "Mark everything up to a message read",
            mark_read,
            "threads",
            body="json",
            request_model=ReadMark,
            response_model=ThreadAnswer,
            errors=(*_ERR, 413, 422),
        ),
        ApiRoute(
            "GET",
            f"{base}/notifications",
            "listNotifications",
            "Your notifications, newest first, and how many are unread",
            list_notifications,
            "read",
            response_model=NotificationsAnswer,
            query=(
                QueryParam("unread", {"type": "boolean"}),
                QueryParam("after", {"type": "string"}),
                paging[1],
            ),
            errors=_ERR,
        ),
        ApiRoute(
            "POST",
            f"{base}/notifications/read",
            "readNotifications",
            'Mark all your notifications read, or {"ids": [...]}',
            read_notifications,
            "threads",
            body="json",
            request_model=NotificationsRead,
            response_model=ReadAnswer,
            errors=(*_ERR, 413),
        ),
    ]
