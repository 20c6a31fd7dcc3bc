"""The planner web app: its static files at ``/app/``, and the two small routes it needs.

The bundle is built from ``web/`` by esbuild into ``crdt_server/edge/webapp_bundle/`` and
ships as package data, so serving the app needs no Node. Only the files of that directory
are served (read once, by name, so no path can escape it), each with its own content type:
the hashed script and style sheet are cached for a year (their names change with their
content), everything else (the page, the service worker, the manifest) is revalidated on
every load through its ETag, so a new release reaches people on their next load. The build
compresses each text file once (``name.br``, ``name.gz`` beside it): a request gets the
smallest its ``Accept-Encoding`` allows, with ``Content-Encoding`` and ``Vary:
Accept-Encoding``; nothing is compressed per request.

Routes besides the files:

- ``POST /api/token/refresh``: exchange a valid token for a fresh one with the same claims,
  before it expires, up to ``session_max_lifetime_seconds`` after the person signed in.
- ``GET /api/weddings/{id}/access``: who the token's holder is and what they may open, so
  the app shows only the views of documents the role may read, read-only where it may not
  write.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from starlette.responses import RedirectResponse, Response

from crdt_server import clock
from crdt_server.auth.principals import Principal
from crdt_server.documents.demo import DEMO_WEDDING_ID
from crdt_server.edge.demo import DEMO_PEOPLE, demo_links
from crdt_server.edge.identity import unauthorized
from crdt_server.edge.links import public_url
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.problems import ApiError, problem_response
from crdt_server.edge.push_key import push_key_of
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.edge.upgrade import projector_of
from crdt_server.names import ROOM_KINDS
from crdt_server.settings import is_loopback
from crdt_server.times import rfc3339

__all__ = [
    "BUNDLE_PACKAGE",
    "RefreshedToken",
    "StaticFile",
    "WeddingAccess",
    "accepted_encoding",
    "load_bundle",
    "static_response",
    "webapp_routes",
]

BUNDLE_PACKAGE = "webapp_bundle"
"""The directory of the built app, inside ``crdt_server/edge/``."""

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
    ".json": "application/json",
}
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
# The app loads nothing from elsewhere (no CDN) and connects only to its own server.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)


_ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
"""The encodings the build writes beside a file, the smaller (brotli) first."""


@dataclass(frozen=True, slots=True)
class StaticFile:
    """One file of the bundle, ready to serve: as it is, and in each encoding the build
    wrote for it (``{"br": ..., "gzip": ...}``)."""

    body: bytes
    content_type: str
    cache_control: str
    etag: str
    encoded: Mapping[str, bytes] = field(default_factory=dict)

    def etag_of(self, encoding: str | None) -> str:
        """The ETag of one representation (each encoding is a different body)."""
        return self.etag if encoding is None else f'{self.etag[:-1]}-{encoding}"'


def accepted_encoding(header: str, offered: Iterable[str]) -> str | None:
    """The first of ``offered`` (best first) that an ``Accept-Encoding`` header accepts:
    named with a q-value above 0, or covered by ``*``; None for the identity. The header is
    read up to 1,000 characters and 20 entries (a client's own header; no more is needed)."""
    weights: dict[str, float] = {}
    for part in header[:1000].split(",")[:20]:
        name, _, params = part.strip().partition(";")
        q = 1.0
        key, _, value = params.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip()[:8])
            except ValueError:
                q = 0.0
        if name:
            weights[name.strip().lower()] = q
    for encoding in offered:
        if weights.get(encoding, weights.get("*", 0.0)) > 0:
            return encoding
    return None


def _hashed(name: str) -> bool:
    """``app-3F2K1XQ7.js``: esbuild put the content hash in the name."""
    stem = name.rsplit(".", 1)[0]
    return "-" in stem and len(stem.rsplit("-", 1)[1]) >= 8


def load_bundle(directory: str = BUNDLE_PACKAGE) -> dict[str, StaticFile]:
    """The files of a built bundle by name (empty if it was never built): the app's, or
    another page's of ``crdt_server/edge/`` (the RSVP page's ``rsvp_bundle``)."""
    root = resources.files("crdt_server.edge").joinpath(directory)
    files: dict[str, StaticFile] = {}
    if not root.is_dir():
        return files
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if not entry.is_file() or suffix not in _TYPES:
            continue
        body = entry.read_bytes()
        encoded: dict[str, bytes] = {}
        for encoding, extension in _ENCODINGS:
            sibling = root.joinpath(entry.name + extension)
            if sibling.is_file():
                encoded[encoding] = sibling.read_bytes()
        files[entry.name] = StaticFile(
            body=body,
            content_type=_TYPES[suffix],
            cache_control=_IMMUTABLE if _hashed(entry.name) else _REVALIDATE,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            encoded=encoded,
        )
    return files


class RefreshedToken(msgspec.Struct, frozen=True):
    """A fresh token with the claims of the one sent, and when it expires."""

    token: str
    expires_at: str
    """RFC 3339 UTC."""
    expires_in: int
    """Seconds from now."""


class WeddingAccess(msgspec.Struct, frozen=True):
    """Who holds the token and what each room of the wedding is to them."""

    wedding: str
    sub: str
    name: str
    role: str
    expires_at: str | None
    docs: dict[str, Literal["write", "operate", "read", "none"]]
    """Every room kind (``timeline``, ``budget``, ``guests``, ``seating``, ``conflicts``).
    ``operate``: the room is read-only, and the holder changes the document through the
    domain operations listed for that level (``POST .../docs/{doc}/ops``)."""
    projected: list[str] = []
    """The documents the holder reads through a projection (without the fields hidden from
    their role): a different room behind the same URL, read-only. An app that kept a local
    copy of such a document from before drops it rather than merging it back."""
    capabilities: list[str] = []
    """The capabilities of the holder's role (``conflicts.resolve``, ``webhooks.manage``...),
    after the operator's ``CRDT_SERVER_PERMISSIONS``, sorted: an app shows a control only
    when the capability it needs is listed."""
    transport: Literal["collab", "sync"] = "collab"
    """How the planner app syncs this wedding (``CRDT_SERVER_APP_TRANSPORT``): ``collab``,
    one Hocuspocus socket at ``/collab/{wedding_id}`` for all its documents, or ``sync``,
    one y-websocket socket per document at ``/sync``."""
    push_key: str | None = None
    """The server's Web Push (VAPID) public key, ``null`` when it sends no push: an app
    whose subscription was made with another key subscribes again."""
    guest_fields: Literal["nothing", "counts", "names", "names_meals"] | None = None
    """What the holder reads of the guest list, as the couple chose it for a vendor
    member (``nothing``, ``counts``: the totals at ``.../guest-counts``, ``names``,
    ``names_meals``); ``null``: what their role reads."""


def _not_found(detail: str) -> Response:
    return problem_response(ApiError(404, detail))


webapp_routes = Routes()
"""The app's files under ``/app/``, ``/`` redirecting there, and the API routes it needs."""


@functools.cache
def _bundle() -> dict[str, StaticFile]:
    """The built app, read once (on its first request)."""
    return load_bundle()


# Not API operations (browser conveniences): left out of the OpenAPI document. Decorators
# apply bottom up: ``/`` is declared first.
@webapp_routes.get(
    "/app", "redirectToApp", "Redirect to the web app at /app/",
    family="public", security="none", status=307, in_schema=False,
)  # fmt: skip
@webapp_routes.get(
    "/", "redirectRootToApp", "Redirect to the web app at /app/",
    family="public", security="none", status=307, in_schema=False,
)  # fmt: skip
async def to_app(call: ApiCall) -> Response:
    return RedirectResponse("/app/", status_code=307)


_FILE_DESCRIPTION = (
    "HEAD too. The hashed script and style sheet are cached for a year; everything else is "
    "revalidated (ETag, 304). Sent brotli- or gzip-compressed where `Accept-Encoding` allows "
    "(compressed at build time; `Vary: Accept-Encoding`, an ETag per encoding)."
)


class AppFilePath(msgspec.Struct, frozen=True):
    name: Annotated[str, Meta(description="a file name of the built web app")]


@webapp_routes.get(
    "/app/",
    "getWebApp",
    "The planner web app's page",
    family="public",
    security="none",
    media_type="text/html",
    errors=(404,),
    description=_FILE_DESCRIPTION,
)
async def serve_page(call: ApiCall) -> Response:
    return _serve(call, "index.html")


@webapp_routes.get(
    "/app/{name}",
    "getWebAppFile",
    "A file of the planner web app (script, styles, service worker, manifest, icon)",
    family="public",
    security="none",
    media_type="*/*",
    errors=(404,),
    description=_FILE_DESCRIPTION,
)
async def serve_file(call: ApiCall, path: AppFilePath) -> Response:
    return _serve(call, path.name)


_PAGES = frozenset({"sign-in", "invite", "new"})
"""Paths of the app that are pages of its own, served as its page: ``/app/sign-in#code=...``
(an emailed sign-in link), ``/app/invite#code=...`` (an invitation), ``/app/new`` (a new
wedding's setup). The code stays in the fragment, which no request carries."""


def _serve(call: ApiCall, name: str) -> Response:
    files = _bundle()
    found = files.get("index.html" if name in _PAGES else name)
    if found is None:
        if not files:
            return _not_found(
                "the web app is not built into this installation: run scripts/serve "
                "from a checkout with Node.js, or install a released package"
            )
        return _not_found(f"no file {name!r} in the web app")
    page = name.endswith(".html") or name in _PAGES
    if page and call.state.settings.app_transport == "sync":
        found = _sync_page(found)
    worker = "/app/" if name == "sw.js" else None
    return static_response(call, found, csp=_CSP if page else None, worker_scope=worker)


_TRANSPORT_HINT = b'<meta name="crdt-app-transport" content="collab">'


_SYNC_PAGES: dict[str, StaticFile] = {}
"""The page's ``sync`` variant by the ETag of the page it was made from (one, or a few)."""


def _sync_page(page: StaticFile) -> StaticFile:
    """The page as a server with ``CRDT_SERVER_APP_TRANSPORT=sync`` serves it: its hint says
    ``sync``, so the app opens no ``/collab`` socket before ``/access`` answers (the answer
    still decides). Sent uncompressed (a few hundred bytes), with its own ETag."""
    made = _SYNC_PAGES.get(page.etag)
    if made is None:
        body = page.body.replace(_TRANSPORT_HINT, _TRANSPORT_HINT.replace(b"collab", b"sync"))
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        made = StaticFile(body, page.content_type, page.cache_control, etag)
        _SYNC_PAGES[page.etag] = made
    return made


def static_response(
    call: ApiCall, found: StaticFile, *, csp: str | None, worker_scope: str | None
) -> Response:
    """One file of a bundle (304 when ``If-None-Match`` names it): ``csp`` for a page,
    ``worker_scope`` for a service worker (its ``Service-Worker-Allowed``)."""
    encoding = (
        accepted_encoding(call.request.headers.get("accept-encoding", ""), found.encoded)
        if found.encoded
        else None
    )
    headers = {
        "Cache-Control": found.cache_control,
        "ETag": found.etag_of(encoding),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    if found.encoded:
        # The body depends on Accept-Encoding: a shared cache keeps one per encoding.
        headers["Vary"] = "Accept-Encoding"
    if csp is not None:
        headers["Content-Security-Policy"] = csp
    if worker_scope is not None:
        # Served from its page's folder, a worker has that scope by default; say so for
        # proxies that rewrite paths, and never let an old worker be served from a cache.
        headers["Service-Worker-Allowed"] = worker_scope
    if headers["ETag"] in call.request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if encoding is not None:
        headers["Content-Encoding"] = encoding
        return Response(found.encoded[encoding], media_type=found.content_type, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)


@webapp_routes.post(
    "/api/token/refresh",
    "refreshToken",
    "Exchange a valid token (Bearer) for a fresh one with the same claims",
    family="read",
    response_model=RefreshedToken,
    errors=(401, 403),
    description="Until `CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS` after the sign-in "
    "(`auth_time`, kept through refreshes). 401 for a missing, bad, expired or "
    "revoked token or a session past that lifetime; 403 when the server signs no "
    "tokens.",
)
async def refresh_token(call: ApiCall) -> Response:
    """Exchange a valid token (``Authorization: Bearer``) for a fresh one with the same
    claims. 401 for a missing, bad, expired or revoked token, or a session past
    ``session_max_lifetime_seconds``; 403 when this server cannot sign tokens."""
    claims = call.caller.claims  # verified once, before the handler
    if claims is None:
        raise unauthorized("send the token as Authorization: Bearer")
    state = call.state
    settings, codec, revocations = state.settings, state.token_codec, state.revocations
    if claims.iat is None:
        raise unauthorized("a token without 'iat' cannot be refreshed")
    if any(revocations.revoked(claims, wedding) for wedding in claims.weddings):
        raise unauthorized("token revoked")
    if claims.sid is not None:
        # Its device session mints the next one (``POST /api/session/refresh``): a token
        # refreshed here would carry no ``sid`` and outlive the device session's end.
        raise unauthorized("a device session's token is refreshed by POST /api/session/refresh")
    now = clock.now()
    signed_in = claims.auth_time if claims.auth_time is not None else claims.iat
    lifetime = min(claims.exp - claims.iat, settings.token_ttl_seconds)
    expires = min(now + lifetime, signed_in + settings.session_max_lifetime_seconds)
    if expires - now < 1:
        raise unauthorized("this session reached its maximum lifetime; sign in again")
    try:
        fresh = codec.mint(
            sub=claims.sub,
            name=claims.name,
            role=claims.role,
            wedding=claims.weddings[0] if len(claims.weddings) == 1 else claims.weddings,
            ttl=int(expires - int(now)),
            docs={doc: access.value for doc, access in claims.docs.items()},
            auth_time=int(signed_in),
        )
    except ValueError as exc:
        raise ApiError(403, "this server does not sign tokens (no HS256 secret)") from exc
    decoded = codec.decode(fresh)
    return json_response(
        RefreshedToken(fresh, rfc3339(decoded.exp, "seconds"), int(decoded.exp - now))
    )


class DemoLink(msgspec.Struct, frozen=True):
    role: str
    name: str
    url: str


class LocalDemo(msgspec.Struct, frozen=True):
    wedding: str
    links: list[DemoLink]


@webapp_routes.get(
    "/api/local-demo",
    "getLocalDemo",
    "Sign-in links of the local demo, for the app's first page",
    family="public",
    security="none",
    response_model=LocalDemo,
    errors=(404,),
    description="Only while the server runs with `--allow-anonymous` on a loopback "
    "address and the request comes from this machine (anyone who reaches such a "
    "server may read and write every wedding anyway): one link per role into the "
    "`demo` wedding. 404 everywhere else, with `--allow-anonymous-on-network` too.",
)
async def local_demo(call: ApiCall) -> Response:
    """The demo's sign-in links, for a person who opened the app without one on a local
    demo server (see the route's description); 404 anywhere else."""
    settings = call.state.settings
    client = call.request.client
    local = (
        settings.allow_anonymous
        and is_loopback(settings.host)
        and client is not None
        and is_loopback(client.host)
    )
    if not local:
        raise ApiError(404, "this server runs no local demo")
    base = public_url(call.request, settings, "").rstrip("/")
    links = [
        DemoLink(role, DEMO_PEOPLE[role][1], url)
        for role, url in demo_links(call.state.token_codec, settings, base)
    ]
    response = json_response(LocalDemo(DEMO_WEDDING_ID, links))
    response.headers["Cache-Control"] = "no-store"
    return response


@webapp_routes.get(
    "/api/weddings/{wedding_id}/access",
    "getWeddingAccess",
    "Who the token's holder is and which rooms they may read or write",
    family="read",
    response_model=WeddingAccess,
    errors=(401, 403, 404),
)
async def wedding_access(call: ApiCall, path: WeddingPath) -> Response:
    """Who holds the token and what they may open in this wedding."""
    wedding_id = path.wedding_id
    docs: dict[str, Literal["write", "operate", "read", "none"]] = {}
    who: Principal | None = None
    for kind in ROOM_KINDS:
        try:
            principal = call.principal(wedding_id, kind)
        except ApiError as exc:
            if exc.status_code == 401:
                raise unauthorized(exc.message) from exc
            if exc.status_code != 403:
                raise
            docs[kind] = "none"
            continue
        # ``operate``: read the socket, change through the listed operations over HTTP.
        docs[kind] = (
            "write" if principal.can_write else "operate" if principal.can_operate else "read"
        )
        who = principal
    if who is None:
        raise ApiError(403, "no document of this wedding is open to you")
    expires = rfc3339(who.expires_at, "seconds") if who.expires_at is not None else None
    projections = projector_of(call.state.hooks)
    projected = [
        doc
        for doc in (
            projections.projected_documents(who.role, who.guest_fields) if projections else []
        )
        if docs.get(doc) != "none"
    ]
    for doc in projected:
        # Its socket is read-only, whatever the token's overrides say; the operations of
        # ``operate`` run over HTTP on the document itself, so that level stays.
        if docs[doc] != "operate":
            docs[doc] = "read"
    capabilities = [
        name for name, roles in call.state.permissions.capabilities().items() if who.role in roles
    ]
    return json_response(
        WeddingAccess(
            wedding_id,
            who.user_id,
            who.name,
            who.role,
            expires,
            docs,
            projected,
            capabilities,
            "sync" if call.state.settings.app_transport == "sync" else "collab",
            push_key_of(call.state),
            who.guest_fields,  # type: ignore[arg-type]  # a token's claim is one of them
        )
    )
