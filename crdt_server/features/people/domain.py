"""A member of a wedding as the directory keeps it, and as the routes and the export show it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PARTICIPATION", "Member", "member_json"]

PARTICIPATION = ("all", "mentions", "none")
"""What a member is notified of: every message of their threads, mentions, nothing."""


@dataclass(frozen=True, slots=True)
class Member:
    sub: str
    role: str
    name: str
    email: str | None
    participation: str = "all"
    email_on: bool = True
    guest_fields: str | None = None
    """What they read of the guest list (a vendor's field set,
    :data:`~crdt_server.auth.permissions.GUEST_FIELD_SETS`; ``None``: what the role reads)."""

    @property
    def takes_email(self) -> bool:
        """Whether their notifications may be emailed: an address, and emails on."""
        return bool(self.email) and self.email_on


def member_json(member: Member, *, with_email: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {"sub": member.sub, "role": member.role, "name": member.name}
    if member.role == "vendor":
        # What they read of the guest list (every member may know it: the couple's choice,
        # not a secret); null: what the role reads (a vendor the directory learnt of from
        # a token).
        shown["guest_fields"] = member.guest_fields
    if with_email:
        shown["email"] = member.email
        shown["participation"] = member.participation
        shown["email_notifications"] = member.email_on
    return shown
