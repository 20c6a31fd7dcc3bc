"""The thread feature's vocabulary: refusals, who asks, members, and the pure rules (who
sees a thread's rows, who is notified of a message and why, how mentions are read)."""

from __future__ import annotations

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
    "message_json",
    "recipients",
    "thread_json",
    "unnotified_mentions",
    "who_sees",
]

KINDS = ("general", "vendor", "guest", "seating", "timeline", "budget")
STATUSES = ("open", "resolved", "archived")
PRIORITIES = ("normal", "urgent", "emergency")
LEADS = frozenset({"couple", "planner"})
"""Roles that see every thread (of the documents they may read) and get urgent messages."""
MAX_BODY_BYTES = 8 * 1024
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,256})")
RANK = {"normal": 0, "urgent": 1, "emergency": 2}


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


def mentions_in(body: str, members: dict[str, Member]) -> list[str]:
    """Members named ``@sub`` in the body (a trailing full stop is not part of a name)."""
    found: list[str] = []
    for match in _MENTION.finditer(body):
        name = match.group(1)
        for candidate in (name, name.rstrip(".")):
            if (not members or candidate in members) and candidate not in found:
                found.append(candidate)
                break
    return found


def who_sees(
    participants: Sequence[str],
    members: Mapping[str, Member],
    docs: Collection[str],
    reads: Callable[[str], Collection[str]] | None = None,
) -> set[str]:
    """Who may see a thread anchored to ``docs``: its participants and the couple and
    planner, each only if their role (``reads``: role -> the documents it may read; every
    document if not given) reads every one of those documents. A participant missing from
    the directory (role unknown) sees it only if it is anchored to nothing."""
    seen: set[str] = set()
    for sub in {*participants, *(s for s, m in members.items() if m.role in LEADS)}:
        member = members.get(sub)
        if member is None:
            if not docs:
                seen.add(sub)
        elif reads is None or all(d in reads(member.role) for d in docs):
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
    if level != "normal":
        for sub, member in members.items():
            if member.role in LEADS and sub in can_see:
                chosen[sub] = "urgent"
    if parent_author and parent_author in can_see:
        member = members.get(parent_author)
        if member is None or member.participation != "none" or level != "normal":
            chosen[parent_author] = "reply"
    for sub in mentions:
        if sub in can_see:
            chosen[sub] = "mention"
    chosen.pop(author.sub, None)
    return chosen


def unnotified_mentions(
    author: str, mentions: Sequence[str], members: Mapping[str, Member], can_see: Collection[str]
) -> list[dict[str, str]]:
    """The mentions a message could not notify, and why: ``cannot_see_thread`` (a member
    who may not see it; the thread is never widened by a mention) or ``not_a_member`` (only
    when the directory is empty and any ``@name`` counts). Every principal of the wedding
    may list the directory and a thread's participants, so this tells the author nothing
    they could not learn."""
    return [
        {"sub": sub, "reason": "cannot_see_thread" if sub in members else "not_a_member"}
        for sub in mentions
        if sub != author and sub not in can_see
    ]
