"""The one place the server builds the URLs it hands out, by two rules:

- **Links that leave the requester** (in an email, an SMS, a push notification, a webhook
  body: a sign-in link, an invitation, an RSVP link, an unsubscribe link):
  :func:`outbound_url` / :func:`server_url`, from ``CRDT_SERVER_PUBLIC_URL`` when set,
  else from the socket the server listens on; never from the request's ``Host`` (nor
  ``X-Forwarded-Host``): an attacker who forges it would have the server mail a link to
  their own site, from the server's address, to someone who trusts it.
- **Links shown only to the caller** (an answer's ``url``: a session's WebSocket URL, an
  invitation, an RSVP link, a run sheet or calendar feed): :func:`public_url`, from
  ``CRDT_SERVER_PUBLIC_URL`` when set (behind a TLS proxy the request's own host and
  scheme are the proxy's inside view), else from the request, which reaches only whoever
  forged it. A server listening on a network address with no public URL warns once at
  start, and those answers carry ``public_url_missing: true``
  (:func:`missing_public_url`, :data:`PublicUrlMissing`).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import UNSET, Meta, UnsetType
from starlette.requests import Request

from crdt_server.settings import Settings, is_loopback

__all__ = [
    "PublicUrlMissing",
    "listening_on",
    "missing_public_url",
    "outbound_url",
    "public_url",
    "public_url_missing",
    "server_url",
]

PublicUrlMissing = (
    Annotated[
        bool,
        Meta(
            description="Present (true) only when the server listens on a network address "
            "and CRDT_SERVER_PUBLIC_URL is unset: the link was built from this request's "
            "Host header, which may not be how others reach the server."
        ),
    ]
    | UnsetType
)
"""The field of an answer that shows its caller a link: see :func:`missing_public_url`."""


def public_url(request: Request, settings: Settings, path: str, *, websocket: bool = False) -> str:
    """The absolute URL of ``path`` (which starts with ``/``) as the caller must use it:
    only for a link shown to the caller (an answer), never one that leaves them (use
    :func:`outbound_url`); ``websocket`` turns ``http``/``https`` into ``ws``/``wss``."""
    if settings.public_url:
        base = settings.public_url.rstrip("/")
    else:
        base = f"{request.url.scheme}://{request.url.netloc}"
    if websocket:
        if base.startswith("https://"):
            base = "wss://" + base.removeprefix("https://")
        elif base.startswith("http://"):
            base = "ws://" + base.removeprefix("http://")
    return base + path


def server_url(settings: Settings, listening: tuple[str, int] | None = None) -> str:
    """The base of the links that leave the requester: ``CRDT_SERVER_PUBLIC_URL``, else the
    address the server listens on (``listening``: the socket a request came in on, which
    knows the port when it was chosen at start; without it the settings' host and port).
    Never the request's ``Host`` header: an attacker who asks for a victim's sign-in link
    or invitation with a forged ``Host`` would get a link to their own site."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host, port = listening if listening is not None else (settings.host, settings.port)
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def listening_on(request: Request) -> tuple[str, int] | None:
    """The local address and port of the socket ``request`` came in on (ASGI's
    ``server``), if the server knows it."""
    server = request.scope.get("server")
    if not server or server[1] is None:
        return None
    return str(server[0]), int(server[1])


def outbound_url(request: Request | None, settings: Settings, path: str) -> str:
    """The absolute URL of ``path`` (which starts with ``/``) for a link that leaves the
    requester (an email, an SMS, a push, a webhook body): :func:`server_url` on the socket
    ``request`` came in on (``None``: no request, the settings' address)."""
    listening = listening_on(request) if request is not None else None
    return server_url(settings, listening) + path


def public_url_missing(settings: Settings) -> bool:
    """Whether the server listens on a network address with no ``CRDT_SERVER_PUBLIC_URL``:
    links shown to callers then come from each request's ``Host``, and links that leave
    the requester from the listening socket, which may not be how others reach it."""
    return not settings.public_url and not is_loopback(settings.host)


def missing_public_url(settings: Settings) -> bool | UnsetType:
    """The value of an answer's ``public_url_missing`` (:data:`PublicUrlMissing`): ``True``
    when :func:`public_url_missing`, else left out of the answer."""
    return True if public_url_missing(settings) else UNSET
