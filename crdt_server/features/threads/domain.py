"""The thread feature's vocabulary: refusals, who asks, members, and the pure rules (who
sees a thread's rows, who is notified of a message and why, how mentions are read)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crdt_server.actor import Actor
from crdt_server.documents import DOCUMENT_KINDS
from crdt_server.features.people import Member
from crdt_server.features.threads.tables import ThreadRow
from crdt_server.features.threads.tables_messages import MessageRow
from crdt_server.names import PRIORITIES, RANK, at_least
from crdt_server.times import rfc3339

__all__ = [
    "KINDS",
    "LEADS",
    "MAX_BODY_BYTES",
    "PRIORITIES",
    "RANK",
    "STATUSES",
    "Viewer",
    "all_docs",
    "hidden_docs",
    "mentions_in",
    "message_fingerprint",
    "message_json",
    "plain_mentions",
    "read_mentions",
    "recipients",
    "thread_json",
    "unnotified_mentions",
    "who_sees",
]

KINDS = ("general", "vendor", "guest", "seating", "timeline", "budget")
STATUSES = ("open", "resolved", "archived")
LEADS = frozenset({"couple", "planner"})
"""Roles that see every thread (of the documents they may read) and get urgent messages."""
MAX_BODY_BYTES = 8 * 1024
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,256})")
_AT = re.compile(r"(?<![\w@])@")
_LINKED = re.compile(r"@\[([^\[\]\n]{1,200})\]\(([^()\s]{1,256})\)")
"""``@[Display Name](sub)``, as the app's composer inserts a mention."""
_WORD = re.compile(r"[^\W_][\w'.\-]{0,63}")
"""The word after an ``@`` that names nobody (reported when it looks like a name)."""
MAX_MENTIONS = 50
"""The ``@`` of a message body that are read for mentions (the rest is text)."""
MAX_NAME_CHARS = 200
"""Display names longer than this are never matched as ``@Display Name``."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks (``actor``) and what they may see and do: the documents their role may
    read, whether they moderate. More than who, so a type of its own that holds the
    :class:`~crdt_server.actor.Actor`."""

    actor: Actor
    docs: frozenset[str]
    moderator: bool = False

    @property
    def lead(self) -> bool:
        return self.actor.role in LEADS


def hidden_docs(viewer: Viewer) -> list[str]:
    return [d for d in DOCUMENT_KINDS if d not in viewer.docs]


def message_fingerprint(sub: str, body: str, reply_to: str | None, priority: str | None) -> str:
    """What makes a message the same message when its id is put again (an export keeps
    it with ``priority`` ``None``: the request's own priority is not stored)."""
    return hashlib.sha256(json.dumps([sub, body, reply_to, priority]).encode()).hexdigest()


def message_json(row: MessageRow, thread: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "thread": thread,
        "seq": int(row.seq),
        "author": {"sub": row.author, "role": row.author_role},
        "body": row.body,
        "reply_to": row.reply_to,
        "mentions": json.loads(row.mentions),
        "priority": row.priority,
        "created_at": rfc3339(float(row.created_at)),
        "edited_at": rfc3339(float(row.edited_at)) if row.edited_at is not None else None,
        "deleted": bool(row.deleted),
        "reactions": json.loads(row.reactions),
    }


def thread_json(
    row: ThreadRow, participants: Sequence[str], roles: Mapping[str, str]
) -> dict[str, Any]:
    """A thread as the routes and the export show it (without ``unread``): ``roles``
    holds the members' roles by sub."""
    return {
        "id": row.id,
        "subject": row.subject,
        "kind": row.kind,
        "status": row.status,
        "priority": row.priority,
        "anchors": json.loads(row.anchors),
        "creator": {"sub": row.creator, "role": row.creator_role},
        "participants": [{"sub": s, "role": roles.get(s, "")} for s in participants],
        "created_at": rfc3339(float(row.created_at)),
        "updated_at": rfc3339(float(row.activity)),
        "last_seq": int(row.last_seq),
    }


def all_docs() -> tuple[str, ...]:
    return tuple(DOCUMENT_KINDS)


def mentions_in(body: str, members: Mapping[str, Member]) -> list[str]:
    """The members a body mentions (:func:`read_mentions`)."""
    return read_mentions(body, members)[0]


def read_mentions(
    body: str, members: Mapping[str, Member]
) -> tuple[list[str], list[dict[str, str]]]:
    """The members a body mentions, each once in order, and the names it could not resolve.

    A mention is ``@[Display Name](sub)`` (what the app's composer inserts: the sub decides),
    ``@sub`` (a trailing full stop is not part of it), or a plain ``@Display Name``: the
    longest case-insensitive match among the members' names, ending at a word boundary.

    What names nobody comes back, each once, never refused: a name two members share as
    ``{"name", "reason": "ambiguous_name"}``; a link to a sub that is no member as ``{"name",
    "sub", "reason": "unknown_member"}``; a plain ``@word`` that names nobody as ``{"name",
    "reason": "unknown_member"}`` only when it looks meant as a name (:func:`_looks_named`):
    ``@home`` and ``@ 5pm`` are text. With an empty directory any ``@sub`` counts. Only the
    first :data:`MAX_MENTIONS` ``@`` of a body are read, so its cost is bounded by that count
    times the directory's distinct name lengths."""
    found: list[str] = []
    unresolved: list[dict[str, str]] = []
    names = _names_by_length(members)
    lengths = sorted(names, reverse=True)
    words = {w for length in names.values() for name in length for w in name.split()}

    def mention(sub: str) -> None:
        if sub not in found:
            found.append(sub)

    def report(missed: dict[str, str]) -> None:
        if missed not in unresolved:
            unresolved.append(missed)

    for at in itertools.islice(_AT.finditer(body), MAX_MENTIONS):
        start = at.end()
        linked = _LINKED.match(body, at.start())
        if linked is not None:
            sub = linked.group(2)
            if not members or sub in members:
                mention(sub)
            else:
                name = " ".join(linked.group(1).split())
                report({"name": name, "sub": sub, "reason": "unknown_member"})
            continue
        token = _MENTION.match(body, at.start())
        by_sub = None
        if token is not None:
            raw = token.group(1)
            by_sub = next((c for c in (raw, raw.rstrip(".")) if not members or c in members), None)
        by_name = _longest_name(body, start, names, lengths)
        if by_name is not None and (by_sub is None or len(by_name[0]) > len(by_sub)):
            text, subs = by_name
            if len(subs) == 1:
                mention(subs[0])
            else:
                report({"name": text, "reason": "ambiguous_name"})
        elif by_sub is not None:
            mention(by_sub)
        else:
            word = _looks_named(body, start, words)
            if word is not None:
                report({"name": word, "reason": "unknown_member"})
    return found, unresolved


def _looks_named(body: str, start: int, words: Collection[str]) -> str | None:
    """The word at ``body[start:]`` (after an ``@`` that names nobody) when it looks meant as
    a name: it starts with a capital letter (``@Ghost``), or it is a word of a member's
    display name (``@sam`` when Sam Lee is a member, whose full name was not written).
    Anything else (``@home``, ``@ 5pm``, ``ann@example.com``: an ``@`` after a word
    character is never read) is text, so ordinary writing brings no note."""
    found = _WORD.match(body, start)
    if found is None:
        return None
    word = found.group().rstrip("'.-")
    return word if word[0].isupper() or word.lower() in words else None


def _names_by_length(members: Mapping[str, Member]) -> dict[int, dict[str, list[str]]]:
    """Length -> lower-cased display name -> the subs that bear it."""
    index: dict[int, dict[str, list[str]]] = {}
    for sub, member in members.items():
        name = " ".join(member.name.split()).lower()
        if name and len(name) <= MAX_NAME_CHARS:
            index.setdefault(len(name), {}).setdefault(name, []).append(sub)
    return index


def _longest_name(
    body: str, start: int, names: dict[int, dict[str, list[str]]], lengths: list[int]
) -> tuple[str, list[str]] | None:
    """The longest member name at ``body[start:]``, ending at a word boundary: (the text as
    written, the subs bearing it)."""
    for length in lengths:
        end = start + length
        if end > len(body) or (end < len(body) and (body[end].isalnum() or body[end] == "_")):
            continue
        text = body[start:end]
        subs = names[length].get(text.lower())
        if subs is not None:
            return text, subs
    return None


def who_sees(
    participants: Sequence[str],
    members: Mapping[str, Member],
    docs: Collection[str],
    reads: Callable[[Member], Collection[str]] | None = None,
) -> set[str]:
    """Who may see a thread anchored to ``docs``: its participants and the couple and
    planner, each only if they (``reads``: member -> the documents their role and, for a
    vendor, their field set of the guest list let them read; every document if not given)
    read every one of those documents. A participant missing from
    the directory (role unknown) sees it only if it is anchored to nothing."""
    seen: set[str] = set()
    for sub in {*participants, *(s for s, m in members.items() if m.role in LEADS)}:
        member = members.get(sub)
        if member is None:
            if not docs:
                seen.add(sub)
        elif reads is None or all(d in reads(member) for d in docs):
            seen.add(sub)
    return seen


def recipients(
    author: Actor,
    participants: Sequence[str],
    members: Mapping[str, Member],
    mentions: Sequence[str],
    parent_author: str | None,
    level: str,
    can_see: Collection[str] | None = None,
) -> dict[str, str]:
    """Who is notified of a new message, and why (one reason each, the strongest); only
    who can see the thread (``can_see``, :func:`who_sees`; by default its participants and
    the couple and planner)."""
    if can_see is None:
        can_see = who_sees(participants, members, ())
    chosen: dict[str, str] = {}
    for sub in participants:
        member = members.get(sub)
        if member is not None and member.participation == "all" and sub in can_see:
            chosen[sub] = "message"
    if at_least(level, "urgent"):
        for sub, member in members.items():
            if member.role in LEADS and sub in can_see:
                chosen[sub] = "urgent"
    if parent_author and parent_author in can_see:
        member = members.get(parent_author)
        if member is None or member.participation != "none" or at_least(level, "urgent"):
            chosen[parent_author] = "reply"
    for sub in mentions:
        if sub in can_see:
            chosen[sub] = "mention"
    chosen.pop(author.sub, None)
    return chosen


def unnotified_mentions(
    author: str, mentions: Sequence[str], members: Mapping[str, Member], can_see: Collection[str]
) -> list[dict[str, str]]:
    """The mentioned subs a message could not notify, and why: ``cannot_see_thread`` (a
    member who may not see it; the thread is never widened by a mention) or ``not_a_member``
    (only when the directory is empty and any ``@name`` counts). The names that resolved to
    nobody come from :func:`read_mentions`. Every principal of the wedding
    may list the directory and a thread's participants, so this tells the author nothing
    they could not learn."""
    return [
        {"sub": sub, "reason": "cannot_see_thread" if sub in members else "not_a_member"}
        for sub in mentions
        if sub != author and sub not in can_see
    ]


def plain_mentions(body: str) -> str:
    """A body as an email or a digest shows it: ``@[Display Name](sub)`` reads ``@Display
    Name``."""
    return _LINKED.sub(lambda m: "@" + m.group(1), body)
