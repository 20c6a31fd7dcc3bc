"""The ``threads`` section of a wedding export: members, threads, participants, messages
and read marks, read from and written to the thread feature's tables and the member
directory's (the people feature's, read and written through its functions: threads build on
it).

Both exports use it: ``GET /api/weddings/{id}/export`` (``crdt_server.edge.export``)
and ``crdt-server export`` / ``crdt-server import``, which receive :data:`THREADS` from the
command line (``crdt_server.cli``): the data tools may not import features, so the feature
hands them its section (``crdt_server.tools.export.Section``). It needs only a store, not a
running server. An import turns the section into :class:`storage.FeatureRow` rows that the
store writes in the same transaction as the wedding's documents and events; the thread
tables' own triggers and generated columns index the imported messages for search.

The section::

    {"members": [{"sub", "role", "name", "email", "participation", "email_notifications",
                  "guest_fields" (a vendor's)}],
     "threads": [{"id", "subject", "kind", "status", "priority", "anchors", "creator",
                  "participants", "created_at", "updated_at", "last_seq",
                  "messages": [message as the message routes show it, ...],
                  "reads": [{"sub": "ada", "up_to": 3}, ...]}]}

Not carried: notifications and queued emails (a person's inbox on the old server),
unsubscribe keys (secrets: an import makes new ones) and idempotency keys.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from crdt_server import clock
from crdt_server.auth.permissions import GUEST_FIELD_SETS, ROLES
from crdt_server.auth.tokens import valid_email, valid_sub
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.errors import ExportError
from crdt_server.features import people
from crdt_server.features.people import PARTICIPATION, member_json
from crdt_server.features.people import SCHEMA as PEOPLE
from crdt_server.features.threads.domain import (
    KINDS,
    MAX_BODY_BYTES,
    PRIORITIES,
    STATUSES,
    message_fingerprint,
    message_json,
    thread_json,
)
from crdt_server.features.threads.tables import SCHEMA, exported_threads
from crdt_server.storage import DocumentStore, FeatureRow, Gateway, Schema

__all__ = ["THREADS", "ThreadSection", "export_threads"]

_TEXT = 1024
"""Longest role, id or emoji an import accepts (characters)."""
_NAME = 256
"""Longest member name (as ``PUT .../members/{sub}`` and the ``name`` claim take it)."""
_SUBJECT = 4096


async def export_threads(db: Gateway, wedding: str) -> dict[str, Any]:
    """The wedding's ``threads`` section (see the module docstring)."""
    members = await people.members(db, wedding)
    roles = {m.sub: m.role for m in members}
    found = await exported_threads(db, wedding)
    participants: dict[str, list[str]] = {}
    for participant in found.participants:
        participants.setdefault(participant.thread, []).append(participant.sub)
    messages: dict[str, list[dict[str, Any]]] = {}
    for message in found.messages:
        messages.setdefault(message.thread, []).append(message_json(message, message.thread))
    reads: dict[str, list[dict[str, Any]]] = {}
    for mark in found.reads:
        reads.setdefault(mark.thread, []).append({"sub": mark.sub, "up_to": int(mark.up_to)})
    threads = []
    for row in found.threads:
        item = thread_json(row, participants.get(row.id, []), roles)
        item["messages"] = messages.get(row.id, [])
        item["reads"] = reads.get(row.id, [])
        threads.append(item)
    return {"members": [member_json(m, with_email=True) for m in members], "threads": threads}


class ThreadSection:
    """The ``threads`` section as ``crdt_server.tools.export.Section``."""

    name = "threads"
    schemas: tuple[Schema, ...] = (PEOPLE, SCHEMA)

    async def export(self, store: DocumentStore, wedding: str) -> dict[str, Any]:
        for schema in self.schemas:  # a store that never ran the features: empty tables
            await store.install(schema)
        return await export_threads(Gateway.of(store), wedding)

    def rows(self, data: object, wedding: str) -> list[FeatureRow]:
        """The section as rows for ``wedding``; raises :class:`ExportError` naming the
        field (``threads.threads[0].messages[1].seq``) if any part is not what an export
        holds, so nothing is stored."""
        return _Reader(wedding).section(data)


THREADS = ThreadSection()
"""The section, for ``export_wedding`` / ``parse_export`` / ``import_wedding``."""


def _row(table: str, **values: object) -> FeatureRow:
    return FeatureRow(table, tuple(values.items()))


class _Reader:
    def __init__(self, wedding: str) -> None:
        self.wedding = wedding
        self.rows: list[FeatureRow] = []
        self.members: set[str] = set()
        self.now = clock.now()

    def section(self, data: object) -> list[FeatureRow]:
        where = "threads"
        raw = _object(data, where, {"members", "threads"})
        for i, member in enumerate(_list(raw, "members", where)):
            self.member(member, f"{where}.members[{i}]")
        seen: set[str] = set()
        for i, thread in enumerate(_list(raw, "threads", where)):
            tid = self.thread(thread, f"{where}.threads[{i}]")
            if tid in seen:
                raise ExportError(f"{where}.threads[{i}].id", "appears twice")
            seen.add(tid)
        return self.rows

    def member(self, raw: object, where: str) -> None:
        item = _object(
            raw,
            where,
            {
                "sub",
                "role",
                "name",
                "email",
                "participation",
                "email_notifications",
                "guest_fields",
            },
        )
        sub = _sub(item, "sub", where)
        if sub in self.members:
            raise ExportError(f"{where}.sub", "appears twice")
        self.members.add(sub)
        role = item.get("role")
        if role not in ROLES:
            raise ExportError(f"{where}.role", f"must be one of {', '.join(ROLES)}")
        email = item.get("email")
        if email is not None and (not isinstance(email, str) or not valid_email(email)):
            raise ExportError(f"{where}.email", "must be null or an email address")
        participation = item.get("participation", "all")
        if participation not in PARTICIPATION:
            raise ExportError(
                f"{where}.participation", f"must be one of {', '.join(PARTICIPATION)}"
            )
        email_on = item.get("email_notifications", True)
        if not isinstance(email_on, bool):
            raise ExportError(f"{where}.email_notifications", "must be true or false")
        guest_fields = item.get("guest_fields")
        if guest_fields is not None and (role != "vendor" or guest_fields not in GUEST_FIELD_SETS):
            raise ExportError(
                f"{where}.guest_fields",
                f"must be one of {', '.join(GUEST_FIELD_SETS)} (a vendor's) or null",
            )
        self.rows.append(
            people.member_row(
                self.wedding,
                sub,
                role=role,
                name=_text(item, "name", where, empty=True, limit=_NAME),
                email=email,
                participation=participation,
                email_on=email_on,
                unsubscribe=secrets.token_urlsafe(24),
                updated_at=self.now,
                guest_fields=guest_fields,
            )
        )

    def thread(self, raw: object, where: str) -> str:
        item = _object(
            raw,
            where,
            {"id", "subject", "kind", "status", "priority", "anchors", "creator",
             "participants", "created_at", "updated_at", "last_seq", "messages", "reads",
             "unread"},
        )  # fmt: skip
        tid = _text(item, "id", where)
        subject = _text(item, "subject", where, limit=_SUBJECT)
        kind, status, priority = item.get("kind"), item.get("status"), item.get("priority")
        for name, value, allowed in (
            ("kind", kind, KINDS),
            ("status", status, STATUSES),
            ("priority", priority, PRIORITIES),
        ):
            if value not in allowed:
                raise ExportError(f"{where}.{name}", f"must be one of {', '.join(allowed)}")
        anchors = []
        for i, anchor in enumerate(_list(item, "anchors", where)):
            at = f"{where}.anchors[{i}]"
            found = _object(anchor, at, {"doc", "id"})
            if found.get("doc") not in DOCUMENT_KINDS:
                raise ExportError(f"{at}.doc", f"must be one of {', '.join(DOCUMENT_KINDS)}")
            anchors.append({"doc": found["doc"], "id": _text(found, "id", at)})
        creator = _object(item.get("creator"), f"{where}.creator", {"sub", "role"})
        subs: list[str] = []
        for i, participant in enumerate(_list(item, "participants", where)):
            at = f"{where}.participants[{i}]"
            sub = _sub(_object(participant, at, {"sub", "role"}), "sub", at)
            if sub in subs:
                raise ExportError(f"{at}.sub", "appears twice")
            subs.append(sub)
        last_seq = item.get("last_seq")
        if type(last_seq) is not int or not 0 <= last_seq < 2**62:
            raise ExportError(f"{where}.last_seq", "must be a count")
        docs = "," + ",".join(sorted({a["doc"] for a in anchors})) + ","
        self.rows.append(
            _row(
                "threads",
                wedding=self.wedding,
                id=tid,
                subject=subject,
                kind=kind,
                status=status,
                priority=priority,
                anchors=json.dumps(anchors),
                docs=docs,
                creator=_sub(creator, "sub", f"{where}.creator"),
                creator_role=_text(creator, "role", f"{where}.creator"),
                created_at=_time(item, "created_at", where),
                activity=_time(item, "updated_at", where),
                last_seq=last_seq,
            )
        )
        for sub in subs:
            self.rows.append(_row("thread_participants", wedding=self.wedding, thread=tid, sub=sub))
        self.messages(tid, _list(item, "messages", where), last_seq, f"{where}.messages")
        readers: set[str] = set()
        for i, mark in enumerate(_list(item, "reads", where)):
            at = f"{where}.reads[{i}]"
            found = _object(mark, at, {"sub", "up_to"})
            sub = _sub(found, "sub", at)
            up_to = found.get("up_to")
            if type(up_to) is not int or not 0 <= up_to <= last_seq:
                raise ExportError(f"{at}.up_to", "must be a message seq of this thread")
            if sub in readers:
                raise ExportError(f"{at}.sub", "appears twice")
            readers.add(sub)
            self.rows.append(
                _row("thread_reads", wedding=self.wedding, thread=tid, sub=sub, up_to=up_to)
            )
        return tid

    def messages(self, tid: str, raw: list[Any], last_seq: int, where: str) -> None:
        ids: set[str] = set()
        seqs: set[int] = set()
        for i, message in enumerate(raw):
            at = f"{where}[{i}]"
            item = _object(
                message,
                at,
                {"id", "thread", "seq", "author", "body", "reply_to", "mentions", "priority",
                 "created_at", "edited_at", "deleted", "reactions"},
            )  # fmt: skip
            mid = _text(item, "id", at)
            if mid in ids:
                raise ExportError(f"{at}.id", "appears twice in this thread")
            if item.get("thread", tid) != tid:
                raise ExportError(f"{at}.thread", "must be the id of the thread holding it")
            seq = item.get("seq")
            if type(seq) is not int or not 0 < seq <= last_seq or seq in seqs:
                raise ExportError(f"{at}.seq", "must be a new number from 1 to last_seq")
            author = _object(item.get("author"), f"{at}.author", {"sub", "role"})
            sub = _sub(author, "sub", f"{at}.author", empty=True)  # '' once erased
            body = _text(item, "body", at, empty=True, limit=MAX_BODY_BYTES)
            if len(body.encode()) > MAX_BODY_BYTES:
                raise ExportError(f"{at}.body", f"longer than {MAX_BODY_BYTES} bytes")
            reply_to = item.get("reply_to")
            if reply_to is not None and reply_to not in ids:
                raise ExportError(f"{at}.reply_to", "must be null or an earlier message's id")
            mentions = _mentions(item, at)
            priority = item.get("priority")
            if priority not in PRIORITIES:
                raise ExportError(f"{at}.priority", f"must be one of {', '.join(PRIORITIES)}")
            deleted = item.get("deleted", False)
            if not isinstance(deleted, bool):
                raise ExportError(f"{at}.deleted", "must be true or false")
            reactions = _reactions(item, at)
            edited_at = None if item.get("edited_at") is None else _time(item, "edited_at", at)
            # The idempotency fingerprint of the post (a retry of it after the move is
            # answered with this message); the request's own priority is not kept.
            fingerprint = message_fingerprint(sub, body, reply_to, None) if sub else ""
            self.rows.append(
                _row(
                    "thread_messages",
                    wedding=self.wedding,
                    thread=tid,
                    id=mid,
                    seq=seq,
                    author=sub,
                    author_role=_text(author, "role", f"{at}.author", empty=True),
                    body=body,
                    reply_to=reply_to,
                    mentions=json.dumps(mentions),
                    priority=priority,
                    created_at=_time(item, "created_at", at),
                    edited_at=edited_at,
                    deleted=int(deleted),
                    fingerprint=fingerprint,
                    reactions=json.dumps(reactions, ensure_ascii=False),
                )
            )
            ids.add(mid)
            seqs.add(seq)


def _mentions(item: Mapping[str, Any], at: str) -> list[str]:
    """A message's ``mentions``: a list of subs."""
    mentions = item.get("mentions", [])
    if not isinstance(mentions, list) or not all(
        isinstance(m, str) and valid_sub(m) for m in mentions
    ):
        raise ExportError(f"{at}.mentions", "must be a list of subs")
    return mentions


def _reactions(item: Mapping[str, Any], at: str) -> dict[str, list[str]]:
    """A message's ``reactions``: each emoji to the non-empty list of subs who chose it."""
    reactions = item.get("reactions", {})
    if not isinstance(reactions, dict) or not all(
        isinstance(emoji, str)
        and 0 < len(emoji) <= _TEXT
        and isinstance(subs, list)
        and subs
        and all(isinstance(s, str) and valid_sub(s) for s in subs)
        for emoji, subs in reactions.items()
    ):
        raise ExportError(f"{at}.reactions", "must map emoji to lists of subs")
    return reactions


def _object(value: object, where: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ExportError(where, "must be an object")
    unknown = sorted(k for k in value if k not in keys and value[k] not in ([], {}, None))
    if unknown:
        raise ExportError(f"{where}.{unknown[0]}", "this server cannot store this field")
    return value


def _list(item: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = item.get(key, [])
    if not isinstance(value, list):
        raise ExportError(f"{where}.{key}", "must be a list")
    return value


def _text(
    item: Mapping[str, Any], key: str, where: str, *, empty: bool = False, limit: int = _TEXT
) -> str:
    value = item.get(key)
    if not isinstance(value, str) or len(value) > limit or (not value and not empty):
        size = f"0 to {limit}" if empty else f"1 to {limit}"
        raise ExportError(f"{where}.{key}", f"must be a string of {size} characters")
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ExportError(f"{where}.{key}", "must be valid text") from exc
    return value


def _sub(item: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    """A person's id, by the member routes' rule (:func:`valid_sub`); ``''`` if ``empty``."""
    value = item.get(key)
    if not isinstance(value, str) or not (valid_sub(value) or (empty and value == "")):
        raise ExportError(
            f"{where}.{key}", "must be a person's id (1 to 256 characters, no control characters)"
        )
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise ExportError(f"{where}.{key}", "must be valid text") from exc
    return value


def _time(item: Mapping[str, Any], key: str, where: str) -> float:
    value = item.get(key)
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError(value)
        seconds = moment.timestamp()
    except (ValueError, OverflowError) as exc:
        raise ExportError(f"{where}.{key}", "must be an RFC 3339 time with its offset") from exc
    if not math.isfinite(seconds) or not 0 <= seconds < 253402300800:
        raise ExportError(f"{where}.{key}", "must be an RFC 3339 time with its offset")
    return seconds
