"""A member of a wedding as the directory keeps it, and as the routes and the export show it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from crdt_server.settings import Settings

__all__ = ["PARTICIPATION", "Member", "member_json", "server_url"]

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

    @property
    def takes_email(self) -> bool:
        """Whether their notifications may be emailed: an address, and emails on."""
        return bool(self.email) and self.email_on


def member_json(member: Member, *, with_email: bool) -> dict[str, Any]:
    shown: dict[str, Any] = {"sub": member.sub, "role": member.role, "name": member.name}
    if with_email:
        shown["email"] = member.email
        shown["participation"] = member.participation
        shown["email_notifications"] = member.email_on
    return shown


def server_url(settings: Settings, listening: tuple[str, int] | None = None) -> str:
    """The base of the links the server emails: ``CRDT_SERVER_PUBLIC_URL``, else the
    address it listens on (``listening``: the socket a request came in on, which knows the
    port when it was chosen at start). Never the request's ``Host`` header: an attacker who
    asks for a victim's sign-in link with a forged ``Host`` would get a link to their own
    site."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host, port = listening if listening is not None else (settings.host, settings.port)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"
