"""``/docs``: the API reference page, rendered in the browser from ``/openapi.json``.

Self-contained (a small script and stylesheet shipped in the package): no CDN, nothing
fetched from anywhere but this server.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from starlette.responses import Response

from crdt_server.edge.problems import ApiError
from crdt_server.edge.routing import ApiCall, ApiRoute, json_response

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


async def page(call: ApiCall) -> Response:
    return Response(_PAGE, media_type="text/html", headers=_SECURITY_HEADERS)


async def asset(call: ApiCall) -> Response:
    name = call.path("asset")
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "no such asset")
    data = files("crdt_server.edge").joinpath("static", name).read_bytes()
    return Response(data, media_type=media_type, headers=_SECURITY_HEADERS)


def reference_routes(document: Callable[[], dict[str, Any]]) -> list[ApiRoute]:
    """``/openapi.json`` (the generated ``document()``, itself one of the routes it
    describes), ``/docs`` and its assets."""

    async def openapi(call: ApiCall) -> Response:
        return json_response(document())

    return [
        ApiRoute(
            "GET",
            "/openapi.json",
            "openapi",
            "This OpenAPI document",
            openapi,
            "public",
            "none",
            response_model=dict[str, Any],
        ),
        ApiRoute(
            "GET",
            "/docs",
            "docs",
            "The API reference page",
            page,
            "public",
            "none",
            media_type="text/html",
            in_schema=False,
        ),
        ApiRoute(
            "GET",
            "/docs/{asset}",
            "docsAsset",
            "An asset of the reference page",
            asset,
            "public",
            "none",
            media_type="text/plain",
            in_schema=False,
        ),
    ]
