"""The guests' RSVP page, ``/rsvp/`` (the code in its fragment, ``#code=...``), and its
files: a bundle of its own (``crdt_server/edge/rsvp_bundle``, built from ``web/src/rsvp``),
a Content-Security-Policy of its own (its own files and ``/api/rsvp/`` on its origin,
nothing else) and a service worker whose scope is ``/rsvp/`` only.
"""

from __future__ import annotations

import functools
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import RedirectResponse, Response

from crdt_server.edge.routing import ApiCall, Routes
from crdt_server.edge.webapp import StaticFile, load_bundle, static_response
from crdt_server.errors import NotFound

__all__ = ["PAGE_CSP", "page_routes"]

BUNDLE = "rsvp_bundle"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)
"""The page runs its own script only, talks to its own origin only, and no site may frame
it (a guest's answers are typed into it)."""

page_routes = Routes()


@functools.cache
def _bundle() -> dict[str, StaticFile]:
    return load_bundle(BUNDLE)


class PageFilePath(msgspec.Struct, frozen=True):
    name: Annotated[str, Meta(description="a file name of the RSVP page")]


def _serve(call: ApiCall, name: str) -> Response:
    found = _bundle().get(name)
    if found is None:
        raise NotFound(f"no file {name!r} of the RSVP page", field="name")
    csp = PAGE_CSP if name.endswith(".html") else None
    return static_response(call, found, csp=csp, worker_scope="/rsvp/" if name == "sw.js" else None)


@page_routes.get(
    "/rsvp", "redirectToRsvp", "Redirect to the RSVP page at /rsvp/",
    family="public", security="none", status=307, in_schema=False,
)  # fmt: skip
async def to_page(call: ApiCall) -> Response:
    return RedirectResponse("/rsvp/", status_code=307)


@page_routes.get(
    "/rsvp/",
    "getRsvpPage",
    "The guests' RSVP page (the link's code in its fragment: #code=...)",
    family="public",
    security="none",
    media_type="text/html",
    errors=(404,),
)
async def serve_page(call: ApiCall) -> Response:
    return _serve(call, "index.html")


@page_routes.get(
    "/rsvp/{name}",
    "getRsvpPageFile",
    "A file of the RSVP page (script, styles, service worker)",
    family="public",
    security="none",
    media_type="*/*",
    errors=(404,),
)
async def serve_file(call: ApiCall, path: PageFilePath) -> Response:
    return _serve(call, path.name)
