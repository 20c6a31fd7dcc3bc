"""Who calls: a request's credential, resolved once, as exactly one kind.

Every route declares the kinds of credential it takes (:attr:`Route.accepts
<crdt_server.edge.routing.ApiRoute.accepts>`). Before its handler runs, the request's
credential is read the one way (:func:`resolve`) and a kind the route does not take is
refused with 401 naming it; a JWT is verified here, once, and handlers ask the permission
matrix about its claims (:meth:`Call.principal <crdt_server.edge.routing.ApiCall.principal>`),
never verifying it again.

The kinds, in the order they are recognised:

- ``admin``: the admin API key, from the ``Authorization`` header only (never a URL);
- ``ticket``: a one-use ``?ticket=`` of the event stream (checked by its route);
- ``signature``: a Standard Webhooks signature (``webhook-signature``), for the inbound route;
- ``calendar``: a calendar feed token (``?token=cal_...``), for the feed route;
- ``runsheet``: a vendor's run sheet link token (``?token=rs_...``), for the run sheet
  route only;
- ``jwt``: a signed token (``Authorization: Bearer`` or ``?token=``), verified here;
- ``session``: a device session's cookie (:data:`SESSION_COOKIE`, sent by browsers to
  ``/api/session`` only), for the routes under that path; every route that reads it first
  checks that the request comes from the server's own origin (:func:`same_origin`, 403
  otherwise), whether a cookie came or not; its route looks the secret up in the store;
- ``device``: a native app's device session secret (``Authorization: Device <secret>``),
  taken where the cookie is (the routes under ``/api/session``) and refused (401) on every
  other route: it is never an access token. No ``Origin`` rule: a browser never sends
  this header by itself, so another site's page cannot make it send one;
- ``rsvp``: the code of a household's RSVP link, from the path (``/api/rsvp/{code}``),
  for those routes only; their handler verifies it (a guest is not a role of the matrix);
- ``none``: no credential (anonymous access, when it is on, stands in for a JWT).

Public routes (health, docs, the web app's files, unsubscribe links with their own key)
read no credential: whatever a request to them carries is ignored, never verified.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import urlsplit

from starlette.requests import Request

from crdt_server.auth.principals import Authenticator, AuthError
from crdt_server.auth.tokens import TokenClaims
from crdt_server.codec.credentials import bearer_token
from crdt_server.edge.problems import CHALLENGE, ApiError, FieldProblem, auth_status

__all__ = [
    "CALENDAR_TOKEN_PREFIX",
    "RUN_SHEET_TOKEN_PREFIX",
    "KINDS",
    "SESSION_COOKIE",
    "Caller",
    "CredentialKind",
    "device_secret",
    "resolve",
    "same_origin",
    "unauthorized",
]

CredentialKind = Literal[
    "none",
    "jwt",
    "admin",
    "calendar",
    "runsheet",
    "ticket",
    "signature",
    "session",
    "device",
    "rsvp",
]
KINDS: tuple[CredentialKind, ...] = (
    *(kind for kind in get_args(CredentialKind) if kind != "none"),
    "none",
)
"""Every kind, as a refusal names what a route accepts: ``none`` last."""

SESSION_COOKIE = "crdt_session"
"""The device session cookie's name (``HttpOnly; Secure; SameSite=Strict``, path
``/api/session``)."""

CALENDAR_TOKEN_PREFIX = "cal_"
"""Calendar feed tokens start with this (JWTs cannot: they start with ``ey``)."""
RUN_SHEET_TOKEN_PREFIX = "rs_"
"""A vendor's run sheet link tokens start with this."""

_SPOKEN = {
    "none": "no credential",
    "jwt": "a token",
    "admin": "the admin API key",
    "calendar": "a calendar feed token",
    "runsheet": "a run sheet link",
    "ticket": "an event stream ticket",
    "signature": "a webhook signature",
    "session": "a device session cookie",
    "device": "a device secret",
    "rsvp": "an RSVP link's code",
}


@dataclass(frozen=True, slots=True)
class Caller:
    """A request's credential, resolved once."""

    kind: CredentialKind
    claims: TokenClaims | None = None
    """The verified claims of a ``jwt`` (``None`` for other kinds and anonymous access)."""
    secret: str | None = None
    """A calendar token or stream ticket as given (its route checks it against the store)."""


PUBLIC = Caller("none")


def unauthorized(detail: str, field: str = "token") -> ApiError:
    """A 401 naming the credential at fault, with the ``WWW-Authenticate`` challenge."""
    return ApiError(
        401,
        detail,
        errors=[FieldProblem(field, detail)],
        headers=CHALLENGE,
    )


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request, public_url: str) -> bool:
    """Whether the request comes from the server's own pages: its ``Origin`` is
    ``CRDT_SERVER_PUBLIC_URL``'s origin (else the request's own scheme and host). A browser
    sends no ``Origin`` on a same-origin GET; it says ``Sec-Fetch-Site: same-origin``
    instead, which a page of another site cannot make it say."""
    expected = _origin_of(public_url) if public_url else _origin_of(str(request.url))
    origin = request.headers.get("origin")
    if origin is None:
        return (
            request.method in ("GET", "HEAD")
            and request.headers.get("sec-fetch-site") == "same-origin"
        )
    return origin.rstrip("/").lower() == expected


def device_secret(request: Request) -> str | None:
    """The secret of an ``Authorization: Device <secret>`` header (a native app's device
    session), or ``None``."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "device":
        return None
    return value.strip() or None


def presented(request: Request, admin_key: str) -> tuple[CredentialKind, str | None]:
    """The kind of credential a request carries, and its text (unverified)."""
    header = request.headers.get("authorization")
    if (device := device_secret(request)) is not None:
        return "device", device
    in_header = bearer_token(None, header)
    if in_header is not None and admin_key:
        if hmac.compare_digest(in_header.encode(), admin_key.encode()):
            return "admin", None
    ticket = request.query_params.get("ticket")
    if ticket:
        return "ticket", ticket
    if "webhook-signature" in request.headers:
        return "signature", None
    token = bearer_token(request.query_params.get("token"), header)
    if token is None:
        return "none", None
    if token.startswith(CALENDAR_TOKEN_PREFIX):
        return "calendar", token
    if token.startswith(RUN_SHEET_TOKEN_PREFIX):
        return "runsheet", token
    return "jwt", token


def resolve(
    request: Request,
    accepts: frozenset[CredentialKind],
    authenticator: Authenticator,
    admin_key: str,
    public_url: str = "",
) -> Caller:
    """The request's credential as one kind the route accepts (see the module docstring);
    :class:`ApiError` 401 for a kind it does not take or a token that does not verify, 403
    for a cookie-reading route called from another origin."""
    if "rsvp" in accepts:
        # The code is in the path; any other credential is refused (never verified): the
        # RSVP page sends none, so one here is a client confused about whom it calls.
        kind, _ = presented(request, admin_key)
        if kind != "none":
            raise unauthorized(
                f"this route takes an RSVP link's code, not {_SPOKEN[kind]}", "Authorization"
            )
        code = request.path_params.get("code")
        return Caller("rsvp", secret=code if isinstance(code, str) else "")
    if "device" in accepts and (device := device_secret(request)) is not None:
        return Caller("device", secret=device)
    if "session" in accepts:
        if not same_origin(request, public_url):
            raise ApiError(
                403, "this route answers the server's own pages only (Origin)",
                errors=[FieldProblem("Origin", "not this server's origin")],
            )  # fmt: skip
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            return Caller("session", secret=cookie)
    kind, text = presented(request, admin_key)
    if kind == "none" and "jwt" in accepts and "none" not in accepts:
        # A JWT route without a token: anonymous access when it is on, else 401.
        kind = "jwt"
    if kind not in accepts:
        wanted = " or ".join(_SPOKEN[k] for k in KINDS if k in accepts)
        raise unauthorized(f"this route takes {wanted}, not {_SPOKEN[kind]}", "Authorization")
    if kind != "jwt":
        return Caller(kind, secret=text)
    try:
        return Caller("jwt", claims=authenticator.verify(text))
    except AuthError as exc:
        if auth_status(exc) == 401:
            raise unauthorized(exc.message) from exc
        raise ApiError(auth_status(exc), exc.message) from exc
