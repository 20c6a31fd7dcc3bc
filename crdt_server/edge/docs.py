"""``/docs``: the API reference page, rendered in the browser from ``/openapi.json``.

Self-contained (a small script and stylesheet shipped in the package): no CDN, nothing
fetched from anywhere but this server.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any, Literal

import msgspec
from starlette.responses import Response

from crdt_server.edge.routing import ApiCall, ApiRoute, Routes, json_response

__all__ = ["reference_routes"]

_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crdt-server HTTP API</title>
<link rel="stylesheet" href="/docs/reference.css">
</head>
<body data-spec="/openapi.json">
<main id="reference">Loading the API description...</main>
<script src="/docs/reference.js"></script>
</body>
</html>
"""

_ASSETS = {"reference.js": "text/javascript", "reference.css": "text/css"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


_pages = Routes()
"""The page and its assets: not API operations, so left out of the OpenAPI document."""


class AssetPath(msgspec.Struct, frozen=True):
    asset: Literal["reference.js", "reference.css"]


@_pages.get(
    "/docs",
    "docs",
    "The API reference page",
    family="public",
    security="none",
    media_type="text/html",
    in_schema=False,
)
async def page(call: ApiCall) -> Response:
    return Response(_PAGE, media_type="text/html", headers=_SECURITY_HEADERS)


@_pages.get(
    "/docs/{asset}",
    "docsAsset",
    "An asset of the reference page",
    family="public",
    security="none",
    media_type="text/plain",
    in_schema=False,
)
async def asset(call: ApiCall, path: AssetPath) -> Response:
    data = files("crdt_server.edge").joinpath("static", path.asset).read_bytes()
    return Response(data, media_type=_ASSETS[path.asset], headers=_SECURITY_HEADERS)


def reference_routes(document: Callable[[], dict[str, Any]]) -> list[ApiRoute]:
    """``/openapi.json`` (the generated ``document()``, itself one of the routes it
    describes), ``/docs`` and its assets. A function, not a :class:`Routes` value: the
    document is the app's, made from its route table, this route included."""
    routes = Routes()

    @routes.get(
        "/openapi.json",
        "openapi",
        "This OpenAPI document",
        family="public",
        security="none",
        response_model=dict[str, Any],
    )
    async def openapi(call: ApiCall) -> Response:
        return json_response(document())

    return [*routes, *_pages]
