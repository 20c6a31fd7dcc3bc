"""The thread feature's vocabulary: refusals, who asks, members, and the pure rules (who
sees a thread's rows, who is notified of a message and why, how mentions are read)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crdt_server.extensions.events import rfc3339
from documents import DOCUMENT_KINDS

__all__ = [
    "KINDS",
    "LEADS",
    "MAX_BODY_BYTES",
    "MESSAGE_COLUMNS",
    "PRIORITIES",
    "RANK",
    "STATUSES",
    "THREAD_COLUMNS",
    "Member",
    "ThreadError",
    "Viewer",
    "all_docs",
    "contains_pattern",
    "hidden_docs",
    "member_json",
    "member_of_row",
    "mentions_in",
    "message_json",
    "recipients",
    "thread_json",
]

KINDS = ("general", "vendor", "guest", "seating", "timeline", "budget")
STATUSES = ("open", "resolved", "archived")
PRIORITIES = ("normal", "urgent", "emergency")
PARTICIPATION = ("all", "mentions", "none")
LEADS = frozenset({"couple", "planner"})
"""Roles that see every thread (of the documents they may read) and get urgent messages."""
MAX_BODY_BYTES = 8 * 1024
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,256})")
RANK = {"normal": 0, "urgent": 1, "emergency": 2}


class ThreadError(Exception):
    """A refusal the edge turns into a problem: ``status``, ``message`` and the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: subject, role, and the documents their role may read."""

    sub: str
    role: str
    docs: frozenset[str]
    moderator: bool = False

    @property
    def lead(self) -> bool:
        return self.role in LEADS


@dataclass(frozen=True, slots=True)
class Member:
    sub: str
    role: str
    name: str
    email: str | None
    participation: str = "all"
    email_on: bool = True


def hidden_docs(viewer: Viewer) -> list[str]:
    return [d for d in DOCUMENT_KINDS if d not in viewer.docs]


THREAD_COLUMNS = (
    "id, subject, kind, status, priority, anchors, creator, creator_role, created_at,"
    " activity, last_seq"
)
MESSAGE_COLUMNS = (
    "id, seq, author, author_role, body, reply_to, created_at, edited_at, deleted,"
    " reactions, mentions, priority, fingerprint"
)


def message_json(row: Sequence[Any], thread: str) -> dict[str, Any]:
    (mid, seq, author, role, body, reply_to, created, edited, deleted, reactions, mentions) = row[
        :11
    ]
    return {
        "id": mid,
        "thread": thread,
        "seq": int(seq),
        "author": {"sub": author, "role": role},
        "body": body,
        "reply_to": reply_to,
        "mentions": json.loads(mentions),
        "priority": row[11],
        "created_at": rfc3339(float(created)),
        "edited_at": rfc3339(float(edited)) if edited is not None else None,
        "deleted": bool(deleted),
        "reactions": json.loads(reactions),
    }


def thread_json(
    row: Sequence[Any], participants: Sequence[str], roles: Mapping[str, str]
) -> dict[str, Any]:
    """A thread as the routes and the export show it (without ``unread``): ``row`` holds
    :data:`THREAD_COLUMNS`, ``roles`` the members' roles by sub."""
    return {
        "id": row[0],
        "subject": row[1],
        "kind": row[2],
        "status": row[3],
        "priority": row[4],
        "anchors": json.loads(row[5]),
        "creator": {"sub": row[6], "role": row[7]},
        "participants": [{"sub": s, "role": roles.get(s, "")} for s in participants],
        "created_at": rfc3339(float(row[8])),
        "updated_at": rfc3339(float(row[9])),
        "last_seq": int(row[10]),
    }


def contains_pattern(text: str) -> str:
    """A ``LIKE ... ESCAPE '!'`` pattern matching values that contain ``text`` as is."""
    escaped = text.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%{escaped}%"


def member_of_row(row: Sequence[Any]) -> Member:
    return Member(str(row[0]), str(row[1]), str(row[2]), row[3], str(row[4]), bool(row[5]))


def all_docs() -> tuple[str, ...]:
    return tuple(DOCUMENT_KINDS)


def member_json(member: Member, *, with_email: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {"sub": member.sub, "role": member.role, "name": member.name}
    if with_email:
        shown["email"] = member.email
        shown["participation"] = member.participation
        shown["email_notifications"] = member.email_on
    return shown


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


def recipients(
    author: Viewer,
    participants: Sequence[str],
    members: dict[str, Member],
    mentions: Sequence[str],
    parent_author: str | None,
    level: str,
) -> dict[str, str]:
    """Who is notified of a new message, and why (one reason each, the strongest)."""
    can_see = set(participants) | {s for s, m in members.items() if m.role in LEADS}
    chosen: dict[str, str] = {}
    for sub in participants:
        member = members.get(sub)
        if member is not None and member.participation == "all":
            chosen[sub] = "message"
    if level != "normal":
        for sub, member in members.items():
            if member.role in LEADS:
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
