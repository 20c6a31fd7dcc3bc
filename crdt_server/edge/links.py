"""The one place the server builds URLs that it hands out (session URLs, later feeds and
links in emails): from ``CRDT_SERVER_PUBLIC_URL`` when set (behind a TLS proxy the request's
own host and scheme are the proxy's inside view), else from the request."""

from __future__ import annotations

from starlette.requests import Request

from crdt_server.settings import Settings

__all__ = ["public_url"]


def public_url(request: Request, settings: Settings, path: str, *, websocket: bool = False) -> str:
    """The absolute URL of ``path`` (which starts with ``/``) as clients must use it;
    ``websocket`` turns ``http``/``https`` into ``ws``/``wss``."""
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
