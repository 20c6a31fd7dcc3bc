"""The device sessions' vocabulary: their lifetimes, the bus message that ends one, what
the feature is given to send email with and what it tells other features, the results of
a sign-in and of a refresh, and the emails it sends (a sign-in link, an "add your email"
link, a new device) (see :mod:`crdt_server.features.signin.extension`). :func:`server_url`,
the base of every link that leaves the requester, lives in :mod:`crdt_server.edge.links`
(every feature's emails use it) and is served here under its old name."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from crdt_server.cluster.messages import BusMessage
from crdt_server.edge.links import server_url

__all__ = [
    "ACCESS_TOKEN_SECONDS",
    "CODE_SECONDS",
    "SESSION_ENDED",
    "Forgotten",
    "MailQueue",
    "Refreshed",
    "SessionEnded",
    "SignedIn",
    "Verified",
    "claim_email",
    "new_device_email",
    "server_url",
    "sign_in_email",
]

ACCESS_TOKEN_SECONDS = 900
"""An access token minted from a device session lives at most this long."""
CODE_SECONDS = 900
"""A sign-in link works this long."""

SESSION_ENDED = "people.session_ended"


class SessionEnded(BusMessage, frozen=True, tag=SESSION_ENDED):
    """A device session ended: refuse its tokens, close its sockets with 4401."""

    sid: str


class MailQueue(Protocol):
    """Where the feature's emails go: the notifications feature's outbox."""

    emails: bool
    """Whether this server sends email at all (an SMTP server is set)."""

    async def queue_email(self, address: str, subject: str, body: str) -> None:
        """Queue one email to a bare address (durably: the mailer sends it, with retries)."""
        ...

    async def forget_address(self, address: str) -> None:
        """Drop the emails still waiting for ``address`` (lower case): its person was
        erased."""
        ...


Forgotten = Callable[[str], Awaitable[object]]
"""Told that an erasure left an address (lower case) held by nobody: what another feature
keeps of it goes."""

Verified = Callable[[str, Sequence[str]], Awaitable[object]]
"""Told that a sign-in link verified an address (lower case), with the weddings where it
now identifies the person's member."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A completed sign-in: the person, their new device session and its cookie secret."""

    person: str
    email: str
    device: str
    secret: str
    ambiguous: tuple[str, ...]
    """Weddings where several members hold the address (the person became none of them)."""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """A device session that was used: its person, and the new secret if it rotated."""

    device: str
    person: str
    secret: str | None


def sign_in_email(code: str, base: str) -> tuple[str, str]:
    """A sign-in link's email (subject, body); ``base``: the server's public URL."""
    link = f"{base.rstrip('/')}/app/sign-in#code={code}"
    minutes = CODE_SECONDS // 60
    return (
        "Your sign-in link",
        f"Open this link to sign in to your wedding planning:\n\n{link}\n\n"
        f"It works once, for {minutes} minutes; a newer link replaces it. If you did"
        " not ask for it, ignore this email: nobody can sign in without it.\n",
    )


def claim_email(code: str, base: str) -> tuple[str, str]:
    """An "add your email" link's email (subject, body); ``base``: the server's public URL."""
    link = f"{base.rstrip('/')}/app/sign-in#code={code}"
    minutes = CODE_SECONDS // 60
    return (
        "Confirm your email address",
        "Someone signed in to a wedding's planning asked to add this address to their"
        f" sign-in. Open this link to confirm it and sign in:\n\n{link}\n\n"
        f"It works once, for {minutes} minutes; a newer link replaces it. If you did"
        " not ask for it, ignore this email: nothing changes without it.\n",
    )


def new_device_email(label: str, at: float) -> tuple[str, str]:
    """The email (subject, body) that tells a person a new device (``label``) signed in at
    ``at``."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return (
        "A new device signed in",
        f"A new device signed in to your wedding planning at {when}:\n\n  {label}\n\n"
        "If it was not you, sign out that device from the devices list of the app.\n",
    )
