"""The device sessions' vocabulary: their lifetimes, the bus message that ends one, what
the feature is given to send email with and what it tells other features, the results of
a sign-in and of a refresh, and the emails it sends (a sign-in link, an "add your email"
link, a new device) (see :mod:`crdt_server.features.signin.extension`). :func:`server_url`,
the base of every link that leaves the requester, lives in :mod:`crdt_server.edge.links`
(every feature's emails use it) and is served here under its old name."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from msgspec import Meta

from crdt_server.cluster.messages import BusMessage
from crdt_server.edge.links import server_url

__all__ = [
    "ACCESS_TOKEN_SECONDS",
    "CODE_SECONDS",
    "SESSION_ENDED",
    "Forgotten",
    "APP_LINK_PAGE",
    "Challenge",
    "Client",
    "DeviceName",
    "MailQueue",
    "Proof",
    "Refreshed",
    "Refused",
    "SessionEnded",
    "SignedIn",
    "Verified",
    "Verifier",
    "claim_email",
    "new_device_email",
    "pkce_challenge",
    "server_url",
    "sign_in_email",
]

ACCESS_TOKEN_SECONDS = 900
"""An access token minted from a device session lives at most this long."""
CODE_SECONDS = 900
"""A sign-in link works this long."""

SESSION_ENDED = "people.session_ended"

APP_LINK_PAGE = "sign-in-app"
"""The page of a native app's sign-in link (``/app/sign-in-app#code=...``): a path of its
own, which the app claims (``/.well-known/apple-app-site-association``,
``/.well-known/assetlinks.json``), so that a browser's sign-in links on the same phone
still open the browser."""

Client = Literal["browser", "app"]
"""Who signs in: the web app in a browser (a cookie), or a native app (a device secret)."""
Challenge = Annotated[
    str,
    Meta(
        pattern="^[A-Za-z0-9_-]{43}$",
        description="BASE64URL(SHA256(code_verifier)) without padding (RFC 7636, S256)",
    ),
]
Verifier = Annotated[
    str,
    Meta(
        pattern="^[A-Za-z0-9._~-]{43,128}$",
        description="the PKCE code_verifier whose S256 challenge the sign-in request sent",
    ),
]
DeviceName = Annotated[
    str, Meta(min_length=1, max_length=120, description="what the devices list calls it")
]


Refused = Literal["code", "code_verifier"]
"""Why a sign-in code signed nobody in: the field at fault."""


def pkce_challenge(verifier: str) -> str:
    """The S256 ``code_challenge`` of a PKCE ``code_verifier`` (RFC 7636 section 4.2):
    BASE64URL(SHA256(ASCII(verifier))), without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Proof:
    """What a sign-in's completion brings beside the code: whether a native app makes it
    (it must prove the link was asked for by itself), and its PKCE ``code_verifier``."""

    app: bool = False
    verifier: str | None = None

    def answers(self, challenge: str | None) -> bool:
        """Whether this completion may use a code asked for with ``challenge`` (``None``:
        without one): the verifier matches it (compared in constant time); without a
        challenge, only a browser's completion with no verifier may."""
        if challenge is None:
            return not self.app and self.verifier is None
        if self.verifier is None:
            return False
        return hmac.compare_digest(pkce_challenge(self.verifier), challenge)


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


def sign_in_email(code: str, base: str, *, app: bool = False) -> tuple[str, str]:
    """A sign-in link's email (subject, body); ``base``: the server's public URL; ``app``:
    the link a native app claims (:data:`APP_LINK_PAGE`)."""
    page = APP_LINK_PAGE if app else "sign-in"
    link = f"{base.rstrip('/')}/app/{page}#code={code}"
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
