"""Typed request and response bodies (msgspec), and the one way a JSON body is decoded.

The OpenAPI document is generated from these types, so what is validated and what is
documented cannot drift apart. A body that is not JSON, or is not an object, is a 400; a
field of the wrong type or value is a 422; both name the field (``errors[0].field``, a path
such as ``ttl`` or ``ops[0].name``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from crdt_server.actor import Actor
from crdt_server.documents.notes import TEXT_OPERATIONS
from crdt_server.documents.operations import OPERATIONS
from crdt_server.edge.links import PublicUrlMissing
from crdt_server.edge.problems import ApiError, FieldProblem, Problem
from crdt_server.names import WEDDING_ID_PATTERN
from crdt_server.storage.base import HistoryEntry

__all__ = [
    "ConflictItem",
    "ConflictsAnswer",
    "DeleteAnswer",
    "Deleted",
    "DocumentAnswer",
    "Health",
    "HistoryAnswer",
    "NotReady",
    "OperationAnswer",
    "OperationRequest",
    "Page",
    "Readiness",
    "RevokeAnswer",
    "RevokeRequest",
    "Seq",
    "SessionAnswer",
    "SessionRequest",
    "SyncAnswer",
    "SyncRequest",
    "UpdateAnswer",
    "base64_field",
    "decode_json",
]

T = TypeVar("T")
C = TypeVar("C")

Role = Literal["couple", "planner", "vendor", "family", "friend"]
GuestFields = Literal["nothing", "counts", "names", "names_meals"]
"""What a vendor member reads of the guest list (``GUEST_FIELD_SETS`` of the permissions)."""
Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
WeddingId = Annotated[str, msgspec.Meta(pattern=f"^{WEDDING_ID_PATTERN.pattern}$")]
Seq = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A position in a log (the stores keep 64-bit integers: larger is refused as bad input)."""
# Documented as an enum, checked by the domain (which answers 400 naming the field).
OperationName = Annotated[
    str, msgspec.Meta(extra_json_schema={"enum": sorted([*OPERATIONS, *TEXT_OPERATIONS])})
]
Base64 = Annotated[str, msgspec.Meta(extra_json_schema={"contentEncoding": "base64"})]


class SessionRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Mint a token for one of the app's users, for one wedding."""

    sub: Subject
    role: Role
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    ttl: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Seconds; at most ``CRDT_SERVER_TOKEN_TTL_SECONDS`` (its default)."""
    docs: dict[str, str] = {}
    """Per-document access overrides: document kind to ``write``, ``operate`` (``guests`` and
    ``seating`` only), ``read`` or ``none``."""
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    """The person's address (an ``email`` claim; the member directory keeps it)."""


class SessionAnswer(msgspec.Struct, frozen=True):
    token: str
    expires_at: int
    url: str
    """Where the y-websocket provider connects (``CRDT_SERVER_PUBLIC_URL`` when set)."""
    rooms: dict[str, str]
    public_url_missing: PublicUrlMissing = UNSET
    """``url`` came from this request's host: the server has no public URL."""


class RevokeRequest(msgspec.Struct, frozen=True):
    sub: Subject
    wedding: WeddingId | None = None


class RevokeAnswer(msgspec.Struct, frozen=True):
    sub: str
    wedding: str | None
    closed: int
    at: float = 0.0
    """When the revocation took effect (Unix seconds): tokens issued until then are refused."""


class ErasureAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
    wedding: str
    documents_deleted: int
    status: str
    """``done`` once the wedding's bytes are gone from the store's files, else ``pending``."""
    status_url: str | None = None


class ErasureStatus(msgspec.Struct, frozen=True):
    wedding: str
    status: str


class TombstoneAnswer(msgspec.Struct, frozen=True):
    wedding: str
    tombstone: str


class GuestErasureAnswer(msgspec.Struct, frozen=True):
    wedding: str
    guest_id: str
    found: bool


class Page(msgspec.Struct, Generic[T, C], frozen=True):
    """One page of a listing: its ``items`` and ``next``, the cursor of the next page
    (``null``: this is the last; ``C`` is the cursor's type, ``None`` for a listing that
    has one page). On the wire the items go by the listing's own name: a listing's answer
    is a subclass that names them, e.g.::

        class EventsAnswer(Page[Event, int], frozen=True):
            items: list[Event] = msgspec.field(name="events")
    """

    items: list[T]
    next: C | None


# What every DELETE of one thing answers (a subclass may name the id otherwise on the wire:
# ``id: str = msgspec.field(name="source")``). No docstring: OpenAPI would show it.
class Deleted(msgspec.Struct, frozen=True):
    id: str
    deleted: bool


class DeleteAnswer(msgspec.Struct, frozen=True):
    wedding: str
    documents_deleted: int


class SyncRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The client's state vector and its pending update, both base64 (either may be empty)."""

    state_vector: Base64 = ""
    update: Base64 = ""


class SyncAnswer(msgspec.Struct, frozen=True):
    """What the client is missing, and the server's state vector, both base64."""

    update: Base64
    state_vector: Base64


class UpdateAnswer(msgspec.Struct, frozen=True):
    committed: bool
    changed: bool


class OperationRequest(msgspec.Struct, frozen=True):
    """A domain operation: ``op`` and its own fields, e.g.
    ``{"op": "add_guest", "name": "Ann Lee"}`` (the fields are checked by the domain)."""

    op: OperationName


class OperationAnswer(msgspec.Struct, frozen=True):
    committed: bool
    result: dict[str, Any]


DocumentAnswer = dict[str, Any]
"""A document as JSON (its shape is the document's schema)."""


class HistoryAnswer(msgspec.Struct, frozen=True):
    history: list[HistoryEntry]


class Acknowledgement(msgspec.Struct, frozen=True):
    sub: str
    role: str
    at: str


class SuggestedResolution(msgspec.Struct, frozen=True):
    """The wedding hierarchy's resolution: keep the writes of the highest role (couple,
    planner, family, vendor, friend); ``ops`` would do it (empty: a person decides)."""

    strategy: str
    keep: Actor | None
    ops: list[dict[str, Any]]
    message: str


class LostOrKept(msgspec.Struct, frozen=True):
    """One side of a concurrent edit: who wrote it (``null``: not known to the server),
    when it reached the server (``null``: before this server process loaded the document),
    and the value (JSON; a map entry's fields). ``value`` is left out (not ``null``) for a
    reader whose role may not read that field (a vendor, a guest's contact); a whole
    entry's value leaves out the fields the reader may not read."""

    actor: Actor | None
    at: str | None
    value: Any | UnsetType = UNSET


class ConcurrentEdit(msgspec.Struct, frozen=True):
    """What a ``concurrent_edit`` conflict lost: ``kind`` is ``concurrent_edit`` (two writes
    of one key crossed; ``kept`` is the one there now) or ``edited_removed_entry`` (an
    edit of an entry someone removed meanwhile; ``kept`` names the remover when known).
    ``path`` is the key from its root (``["guests", "g1", "rsvp"]``); ``same_actor``: both
    writes came from one person (two devices)."""

    kind: Literal["concurrent_edit", "edited_removed_entry"]
    doc: str
    path: list[str]
    field: str | None
    lost: LostOrKept
    kept: LostOrKept | None
    same_actor: bool


class ConflictItem(msgspec.Struct, frozen=True):
    code: str
    paths: list[str]
    message: str
    id: str
    """Stable: the same code on the same entries is the same conflict."""
    first_seen: str | None
    actors: list[Actor]
    """Who last wrote the entries involved (as far as the server knows)."""
    acknowledged: list[Acknowledgement]
    suggestion: SuggestedResolution
    concurrent: ConcurrentEdit | None = None
    """Only for ``code: concurrent_edit``: the write that was lost and the one kept."""


class ConflictsAnswer(msgspec.Struct, frozen=True):
    conflicts: list[ConflictItem]


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    rooms: int
    bus: str


class NotReady(Problem, frozen=True, omit_defaults=True, kw_only=True):
    """The 503 of ``/readyz``: a problem with why (``store``), the bus and the room count."""

    store: str
    bus: str
    rooms: int


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN = re.compile(r"(?:unknown|missing required) field `(?P<name>[^`]*)`")


def _field_of(message: str) -> tuple[str, str]:
    """(field path, message without the path) of a msgspec validation message."""
    match = _AT.search(message)
    path = match.group("path").lstrip(".") if match else ""
    text = message[: match.start()] if match else message
    unknown = _UNKNOWN.search(text)
    if unknown:
        path = f"{path}.{unknown.group('name')}" if path else unknown.group("name")
    return path or "body", text


def decode_json(body: bytes, model: type[T]) -> T:
    """Decode a JSON body into ``model``, or raise a 400/422 :class:`ApiError` naming the
    field. Never lets a decoder's own failure (depth, bad Unicode, bytes that are not UTF-8)
    through as a 500, and refuses NUL characters in any string (PostgreSQL's text cannot
    hold them, and no field of this API means one)."""
    try:
        value = msgspec.json.decode(body, type=model, strict=True)
    except msgspec.ValidationError as exc:
        field, message = _field_of(str(exc))
        status = 400 if field == "body" and message.startswith("Expected `object`") else 422
        raise ApiError(
            status, f"{field}: {message}", errors=[FieldProblem(field, message)]
        ) from None
    except RecursionError:
        raise ApiError.field(400, "body", "the JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise _not_utf8(body) from None
    except msgspec.DecodeError as exc:
        raise _malformed(body, str(exc)) from None
    if b"\\u0000" in body:
        _refuse_nul(body)
    return value


def _not_utf8(body: bytes) -> ApiError:
    # Decoded with surrogateescape, every byte that is not UTF-8 becomes a lone surrogate:
    # the string holding one names the field.
    message = "not valid UTF-8 text"
    try:
        parsed = json.loads(body.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        return ApiError.field(400, "body", message)
    return ApiError.field(400, _text_path(parsed, _not_unicode) or "body", message)


def _refuse_nul(body: bytes) -> None:
    try:
        parsed = msgspec.json.decode(body)
    except (ValueError, RecursionError):  # decoded once with its type already
        parsed = None
    path = _text_path(parsed, lambda text: "\x00" in text)
    if path is not None:
        raise ApiError.field(400, path or "body", "must not contain NUL characters (\\u0000)")


def _malformed(body: bytes, reason: str) -> ApiError:
    # msgspec refuses some JSON the standard library accepts (a lone surrogate escape such
    # as "\ud800", which no UTF-8 store can hold); find which field carried it.
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return ApiError.field(400, "body", f"not valid JSON ({reason})")
    path = _text_path(parsed, _not_unicode)
    if path is not None:
        return ApiError.field(400, path or "body", "not valid Unicode text (a lone surrogate)")
    return ApiError.field(400, "body", f"not valid JSON ({reason})")


def _not_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text_path(value: object, bad: Callable[[str], bool]) -> str | None:
    """The path of the first string (in document order) for which ``bad`` holds, ``""``
    for the body itself, ``None`` if there is none. A bad key names the object holding it
    (the key itself is never echoed). Iterative: any depth the parser accepted."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if bad(item):
                return path
        elif isinstance(item, dict):
            if any(isinstance(key, str) and bad(key) for key in item):
                return path
            children = [(v, f"{path}.{k}" if path else str(k)) for k, v in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend((item[i], f"{path}[{i}]") for i in reversed(range(len(item))))
    return None


def base64_field(value: str, field: str) -> bytes:
    """Decode one base64 field, or raise a 400 naming it (non-ASCII text included)."""
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        raise ApiError.field(400, field, "not valid base64") from None
