"""A member of a wedding as the directory keeps it, and as the routes and the export show it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MEMBER_COLUMNS", "PARTICIPATION", "Member", "member_json", "member_of_row"]

PARTICIPATION = ("all", "mentions", "none")
"""What a member is notified of: every message of their threads, mentions, nothing."""

MEMBER_COLUMNS = "sub, role, name, email, participation, email_on"
"""The columns :func:`member_of_row` reads, in its order."""


@dataclass(frozen=True, slots=True)
class Member:
    sub: str
    role: str
    name: str
    email: str | None
    participation: str = "all"
    email_on: bool = True


def member_of_row(row: Sequence[Any]) -> Member:
    """A member from a row of :data:`MEMBER_COLUMNS`."""
    return Member(str(row[0]), str(row[1]), str(row[2]), row[3], str(row[4]), bool(row[5]))


def member_json(member: Member, *, with_email: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {"sub": member.sub, "role": member.role, "name": member.name}
    if with_email:
        shown["email"] = member.email
        shown["participation"] = member.participation
        shown["email_notifications"] = member.email_on
    return shown
