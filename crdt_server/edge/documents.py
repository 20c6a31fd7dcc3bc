"""The HTTP API for clients that are not live editors: read, write, sync, inspect.

Same permissions as the WebSocket rooms: the token (``Authorization: Bearer``, else the
``token`` query parameter) must let the caller read the document, and write it for the
routes that change it. Every change is answered only after it is committed.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import msgspec
from msgspec import UNSET, Meta, UnsetType
from pycrdt import Doc
from starlette.responses import Response

from crdt_server.auth.permissions import MEAL_FIELDS, operation_refusal
from crdt_server.auth.principals import Principal
from crdt_server.codec.protocol import read_var_uint, write_var_uint
from crdt_server.core.operation_keys import OperationKey
from crdt_server.documents import DOCUMENT_KINDS, to_json
from crdt_server.edge.bodies import (
    DocumentAnswer,
    HistoryAnswer,
    OperationAnswer,
    OperationRequest,
    SyncAnswer,
    SyncRequest,
    UpdateAnswer,
    base64_field,
)
from crdt_server.edge.directory import MemberDirectory
from crdt_server.edge.guards import (
    document_principal,
    readable_documents,
    sender_of,
    wedding_principal,
)
from crdt_server.edge.params import DocPath, WeddingPath
from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import BINARY, ApiCall, Routes, binary_response, json_response
from crdt_server.edge.upgrade import projector_of
from crdt_server.errors import PeerError, TooManyItems
from crdt_server.storage import FeatureRow

__all__ = ["document_routes"]

_AUTH = (401, 403, 404, 429)
STATE_VECTOR_HEADER = "Yjs-State-Vector"
"""The JSON read's header: base64 of the Yjs state vector the view shows."""


def _document(call: ApiCall, path: DocPath, *, write: bool) -> tuple[str, Principal]:
    """The room's name and the caller as seen by it (403 if it may not read, or write)."""
    principal = document_principal(call, path.wedding_id, path.doc, write=write)
    return f"{path.wedding_id}/{path.doc}", principal


async def _readable_room(call: ApiCall, path: DocPath, principal: Principal) -> str:
    """The room ``principal`` reads the document from: the document itself, or, where
    fields of it are hidden from its role, its projection (brought up to date first)."""
    projections = projector_of(call.state.hooks)
    wedding_id, doc, name = path.wedding_id, path.doc, f"{path.wedding_id}/{path.doc}"
    projected = projections and projections.room_for(
        wedding_id, doc, principal.role, principal.guest_fields
    )
    if not projected:
        return name
    assert projections is not None
    await projections.current(projected)
    return projected


document_routes = Routes()
_DOC = "/api/weddings/{wedding_id}/docs/{doc}"


class ReadQuery(msgspec.Struct, frozen=True):
    at: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=2**62,
                description="read the document as of this seq (header Version-Seq: the seq "
                "it is exactly the state of)",
            ),
        ]
        | UnsetType
    ) = UNSET
    format: Annotated[
        Literal["plain", "rich"],
        Meta(
            description="how texts the schema does not know are shown under `other`: `plain` "
            "as their string, `rich` as `{text, delta}` (formats and embeds)"
        ),
    ] = "plain"


@document_routes.get(
    _DOC,
    "readDocument",
    "Read a document: JSON, or a binary Yjs update with Accept: application/octet-stream",
    family="read",
    response_model=DocumentAnswer,
    binary_response=True,
    errors=(400, *_AUTH, 503),
    description=(
        "The guest list's JSON adds `totals` (read-only, derived): `people` (unnamed "
        "plus-ones counted), `rsvp`, `unnamed_plus_ones`, `meals` (by the menu's spelling), "
        "`no_meal`, `dietary`, and, for a caller who may read the seating plan, `tables` "
        "(per table: `name`, `capacity`, `people`, `meals`, `no_meal`, `dietary`) and "
        "`unseated`; meal, dietary and table totals count who may come."
    ),
)
async def read_document(call: ApiCall, path: DocPath, query: ReadQuery) -> Response:
    _, principal = _document(call, path, write=False)
    doc, rich = path.doc, query.format == "rich"
    if query.at is not UNSET:
        return await _read_version(call, path, query.at, rich, principal)
    room = await _readable_room(call, path, principal)
    if BINARY in call.request.headers.get("accept", ""):
        return binary_response(await call.state.weddings.snapshot(room))
    weddings = call.state.weddings
    if doc not in DOCUMENT_KINDS:
        return json_response(await weddings.read_json(path.wedding_id, doc, rich=rich))
    related = _readable_context(call, path, weddings.domain.context(doc))
    view, state = await weddings.read_json_at(
        path.wedding_id, doc, rich=rich, room=room, related=related
    )
    response = json_response(_visible(call, view, doc, principal))
    # What an index into one of its texts was counted against (splice_notes).
    response.headers[STATE_VECTOR_HEADER] = base64.b64encode(state).decode()
    return response


class GuestCounts(msgspec.Struct, frozen=True):
    """The guest list's totals, as the guest list's JSON read shows them (``totals``)."""

    people: int
    rsvp: dict[str, int]
    unnamed_plus_ones: int
    meals: dict[str, int]
    no_meal: int
    dietary: dict[str, int]
    tables: dict[str, dict[str, Any]] | UnsetType = UNSET
    unseated: int | UnsetType = UNSET


@document_routes.get(
    "/api/weddings/{wedding_id}/guest-counts",
    "readGuestCounts",
    "The guest list's headcount, meal and dietary totals, without anyone's name",
    family="read",
    response_model=GuestCounts,
    errors=(400, *_AUTH, 503),
    description=(
        "For whoever reads the guest list, and for a vendor member who reads its counts "
        "only (`guest_fields` `counts`: the document itself is not open to them); 403 for "
        "one who reads nothing of it. The same totals as the guest list's JSON read "
        "(`tables` and `unseated` for a caller who may read the seating plan)."
    ),
)
async def guest_counts(call: ApiCall, path: WeddingPath) -> Response:
    wedding_id = path.wedding_id
    readable = readable_documents(call, wedding_id)
    principal = wedding_principal(call, wedding_id, readable)
    if "guests" not in readable and principal.guest_fields != "counts":
        raise ApiError(403, "the guest list's counts are not open to you")
    related = [kind for kind in ("seating",) if kind in readable]
    view, _ = await call.state.weddings.read_json_at(wedding_id, "guests", related=related)
    totals = dict(view.get("totals") or {})
    if principal.guest_fields is not None and principal.guest_fields != "names_meals":
        for table in (totals.get("tables") or {}).values():
            for name in ("meals", "no_meal", "dietary"):
                table.pop(name, None)
    return json_response(msgspec.convert(totals, GuestCounts))


def _readable_context(call: ApiCall, path: DocPath, kinds: Iterable[str]) -> list[str]:
    """Of the other documents a view reads (the guest list's totals read the seating
    plan), those the caller may read itself."""
    found: list[str] = []
    for kind in kinds:
        try:
            document_principal(call, path.wedding_id, kind, write=False)
        except ApiError as exc:
            if exc.status_code != 403:
                raise
        else:
            found.append(kind)
    return found


def _visible(call: ApiCall, view: dict[str, Any], doc: str, principal: Principal) -> dict[str, Any]:
    """``view`` without the entry fields the caller's role may not read (a guest's notes
    for a vendor: :data:`crdt_server.auth.permissions.FIELD_READERS`; meals and dietary
    needs for a vendor member who reads ``names``, and with them each table's meal and
    dietary totals, which a small table would give away)."""
    hidden = call.state.permissions.hidden_fields(principal.role, doc, principal.guest_fields)
    if not hidden:
        return view
    totals = view.get("totals")
    if MEAL_FIELDS & hidden and isinstance(totals, dict):
        for table in (totals.get("tables") or {}).values():
            if isinstance(table, dict):
                for name in ("meals", "no_meal", "dietary"):
                    table.pop(name, None)
    for collection in view.values():
        if not isinstance(collection, dict):
            continue
        for entry in collection.values():
            if isinstance(entry, dict):
                for name in hidden:
                    entry.pop(name, None)
    return view


@runtime_checkable
class PastStates(Protocol):
    """What answers ``?at=SEQ`` (the versions feature's keeper, when the server runs it)."""

    async def past_state(self, name: str, seq: int) -> tuple[int, Doc[Any]] | None:
        """The seq whose state the document is exactly, and the document; ``None`` when
        nothing that old is kept."""


async def _read_version(
    call: ApiCall, path: DocPath, at: int, rich: bool, principal: Principal
) -> Response:
    """The document as of ``?at=SEQ``; the ``Version-Seq`` header says which seq's state
    it is exactly (the newest at or before ``SEQ`` that is kept)."""
    doc = path.doc
    if doc not in DOCUMENT_KINDS:
        raise ApiError.field(400, "at", f"{doc!r} keeps no versions")
    keeper = call.state.find(PastStates)  # type: ignore[type-abstract]  # a protocol
    if keeper is None:
        raise ApiError.field(400, "at", "this server keeps no versions")
    found = await keeper.past_state(f"{path.wedding_id}/{doc}", at)
    if found is None:
        raise ApiError.field(404, "at", "no state of this document is kept that far back")
    seq, state = found
    headers = {"Version-Seq": str(seq)}
    if BINARY in call.request.headers.get("accept", ""):
        if call.state.permissions.hidden_fields(principal.role, doc, principal.guest_fields):
            # A version's bytes are the whole document: its JSON leaves hidden fields out.
            raise ApiError(403, f"earlier versions of {doc!r} are open to you as JSON only")
        response = binary_response(state.get_update())
    else:
        view = to_json(state, doc, rich=rich)
        response = json_response(_visible(call, view, doc, principal))
    response.headers.update(headers)
    return response


@document_routes.post(
    f"{_DOC}/update",
    "applyUpdate",
    "Apply a binary Yjs update (answered once committed, then broadcast)",
    family="write",
    body="update",
    binary_request=True,
    response_model=UpdateAnswer,
    errors=(400, *_AUTH, 413, 422, 503),
)
async def apply_update(call: ApiCall, path: DocPath) -> Response:
    name, principal = _document(call, path, write=True)
    if not call.body:
        raise ApiError.field(400, "body", "the body must be a binary Yjs update")
    changed = await call.state.weddings.apply_update(name, call.body, sender_of(principal))
    return json_response(UpdateAnswer(committed=True, changed=changed))


def _var_bytes(body: bytes, pos: int) -> tuple[bytes, int]:
    try:
        length, pos = read_var_uint(body, pos)
    except PeerError as exc:
        raise ApiError.field(400, "body", f"binary sync body: {exc.message}") from exc
    if pos + length > len(body):
        raise ApiError.field(400, "body", "binary sync body is truncated")
    return body[pos : pos + length], pos + length


@document_routes.post(
    f"{_DOC}/sync",
    "syncDocument",
    "Offline-first sync: send a state vector and a pending update, receive what is "
    "missing (JSON with base64, or binary: two lib0 varUint8Arrays each way)",
    family="write",
    body="update",
    request_model=SyncRequest,
    binary_request=True,
    response_model=SyncAnswer,
    binary_response=True,
    errors=(400, *_AUTH, 413, 422, 503),
)
async def sync(call: ApiCall, path: DocPath) -> Response:
    """The client sends its state vector and pending update; gets what it is missing."""
    # A read-only client may sync down; its pending update must then be empty.
    name, principal = _document(call, path, write=False)
    doc = path.doc
    binary = call.request.headers.get("content-type", "").startswith(BINARY)
    if binary:
        state_vector, pos = _var_bytes(call.body, 0)
        update, pos = _var_bytes(call.body, pos)
        if pos != len(call.body):
            raise ApiError.field(400, "body", "trailing bytes after the binary sync body")
    else:
        # Not a typed ``body`` parameter: the body is JSON or binary (its content type says).
        request = call.json(SyncRequest)
        state_vector = base64_field(request.state_vector, "state_vector")
        update = base64_field(request.update, "update")
    if update and not principal.can_write:
        raise ApiError(403, f"{doc!r} is read-only for you")
    room = await _readable_room(call, path, principal)
    if update and room != name:
        raise ApiError(403, f"{doc!r} is read-only for you (you read it without some fields)")
    weddings = call.state.weddings
    try:
        diff = await weddings.sync(room, state_vector or b"\x00", update, sender_of(principal))
    except TooManyItems as exc:
        if binary:
            raise  # 413 naming the body
        raise ApiError.field(413, "update", exc.message) from exc
    server_state = await weddings.state_vector(room)
    if binary:
        out = write_var_uint(len(diff)) + diff + write_var_uint(len(server_state)) + server_state
        return binary_response(out)
    return json_response(
        SyncAnswer(
            update=base64.b64encode(diff).decode(),
            state_vector=base64.b64encode(server_state).decode(),
        )
    )


@document_routes.post(
    f"{_DOC}/ops",
    "runOperation",
    'Run a domain operation, e.g. {"op": "add_guest", "name": "Ann Lee"}; '
    "400 malformed, 403 not yours to run (`operate` access runs only the operations listed "
    "for it, naming the field refused), 422 impossible (nothing changed); "
    "Idempotency-Key honoured",
    family="write",
    body="json",
    request_model=OperationRequest,
    response_model=OperationAnswer,
    errors=(400, *_AUTH, 409, 413, 422, 503),
    description=(
        "`Idempotency-Key` (1 to 255 characters), scoped to the wedding, the caller's subject "
        "and this route (the document included), kept 24 h: the same key with the same body "
        "answers the first answer again (header `Idempotent-Replayed: true`) and changes "
        "nothing, even if the document changed since; with another body, 409. The key is "
        "committed in the same transaction as the operation's change, so an answered "
        "operation's key survives a crash. A refusal (400, 403, 422) is not kept: the same "
        "key may be sent again once the operation can run."
    ),
)
async def operate(call: ApiCall, path: DocPath) -> Response:
    _, principal = _document(call, path, write=False)
    # The domain checks the operation itself (400 malformed, 422 impossible, naming the
    # field): the OperationRequest model only documents its envelope, so the body is read
    # as any object rather than as a typed ``body`` parameter.
    op = call.json(dict[str, object])
    if not principal.can_write:
        if not principal.can_operate:
            raise ApiError(403, f"{path.doc!r} is read-only for you")
        refusal = operation_refusal(path.doc, op)
        if refusal is not None:
            raise ApiError.field(403, refusal[1], refusal[0])
    weddings = call.state.weddings
    for other in weddings.domain.needs(path.doc, op):
        # The operation cannot run without another document (seating a household reads the
        # guest list): only for who may read it.
        document_principal(call, path.wedding_id, other, write=False)
    # The others it reads only where the caller may read them (a full table counts the
    # unnamed plus-ones of its guests for who may read the guest list).
    reads = _readable_context(call, path, weddings.domain.context(path.doc, op))
    await _check_owner(call, path, op)
    once = _operation_key(call, path, principal)
    if once is None:
        result = await weddings.operate(
            path.wedding_id, path.doc, op, sender_of(principal), reads=reads
        )
        return json_response(OperationAnswer(committed=True, result=result))
    keys = weddings.keys
    async with keys.held(once):
        first = await keys.first(once)
        if first is not None:
            if first.fingerprint != once.fingerprint:
                raise ApiError.field(
                    409, "Idempotency-Key", "this Idempotency-Key was used with another body"
                )
            replayed = Response(first.answer, media_type="application/json")
            replayed.headers["Idempotent-Replayed"] = "true"
            return replayed
        answer: list[bytes] = []

        def kept(result: dict[str, Any]) -> list[FeatureRow]:
            answer.append(msgspec.json.encode(OperationAnswer(committed=True, result=result)))
            return [keys.row(once, answer[0].decode())]

        await weddings.operate(
            path.wedding_id, path.doc, op, sender_of(principal), rows=kept, reads=reads
        )
    return Response(answer[0], media_type="application/json")


_OWNED = {"tasks": "owner"}
"""Documents whose entries name a member, and the argument that does (a task's owner)."""


async def _check_owner(call: ApiCall, path: DocPath, op: dict[str, object]) -> None:
    """A task's owner is a member of the wedding who may read tasks (422 naming ``owner``);
    without a member directory (a server without the people feature) it is not checked."""
    argument = _OWNED.get(path.doc)
    sub = op.get(argument) if argument is not None else None
    if argument is None or not isinstance(sub, str) or not sub.strip():
        return  # no owner named (or cleared): the domain validates the rest
    directory = call.state.find(MemberDirectory)  # type: ignore[type-abstract]
    if directory is None:
        return
    role = await directory.role_of(path.wedding_id, sub.strip())
    if role is None:
        raise ApiError.field(422, argument, f"no member {sub.strip()!r} in this wedding")
    if not call.state.permissions.access(role, path.doc).can_read:
        raise ApiError.field(
            422, argument, f"member {sub.strip()!r} ({role}) may not read {path.doc}"
        )


def _operation_key(call: ApiCall, path: DocPath, principal: Principal) -> OperationKey | None:
    """The request's ``Idempotency-Key``, scoped to (wedding, subject, route), where the
    server keeps keys (400 for a key of the wrong length)."""
    key = call.request.headers.get("idempotency-key")
    if key is None or not call.state.weddings.keys.installed:
        return None
    if not 1 <= len(key) <= 255:
        raise ApiError.field(400, "Idempotency-Key", "1 to 255 characters")
    return OperationKey(
        path.wedding_id,
        f"{path.wedding_id}:{principal.user_id}:docs/{path.doc}/ops",
        key,
        hashlib.sha256(call.body).hexdigest(),
    )


class HistoryQuery(msgspec.Struct, frozen=True):
    limit: Annotated[int, Meta(description="most entries to return (clamped to 1 to 1000)")] = 100


@document_routes.get(
    f"{_DOC}/history",
    "readHistory",
    "Who changed the document, when (newest first)",
    family="read",
    response_model=HistoryAnswer,
    errors=(400, *_AUTH, 503),
)
async def history(call: ApiCall, path: DocPath, query: HistoryQuery) -> Response:
    name, _ = _document(call, path, write=False)
    entries = await call.state.store.history(name, max(1, min(query.limit, 1000)))
    return json_response(HistoryAnswer(history=list(entries)))
