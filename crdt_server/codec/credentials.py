"""Where a request carries its token: the one reading of the credential that every HTTP
route (:mod:`crdt_server.edge.identity`) and the WebSocket upgrade (the native protocol's
gate, :mod:`crdt_server.wire.gate`, and the ASGI endpoint) share.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

__all__ = ["bearer_token", "query_token"]


def bearer_token(query_token: str | None, authorization: str | None) -> str | None:
    """The token, read the one way every HTTP route and the upgrade read it: the
    ``Authorization: Bearer`` header, else the ``token`` query parameter (browsers cannot
    set headers on a WebSocket)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query_token or None


def query_token(query: str) -> str | None:
    """The ``token`` parameter of a query string (the last one, if repeated)."""
    token = None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "token":
            token = value  # the last one wins, as in Starlette's QueryParams
    return token
