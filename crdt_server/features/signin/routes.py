"""Sign-in links and device sessions over HTTP.

- ``POST /api/sign-in {"email"}``: always 202, answered before anything that depends on the
  address; a link goes out in the background if the address is a person's or a member's.
  A native app adds ``"client": "app"`` and a PKCE ``code_challenge`` (RFC 7636, S256).
- ``POST /api/sign-in/complete {"code"}``: uses the link's code once; the person's most
  recently used wedding's token, their weddings, and the device session's cookie; for a
  native app (``"client": "app"``, ``code_verifier``, ``device_name``) the device session's
  secret in the body instead (``device_secret``), and no ``Origin`` rule.
- ``POST /api/session/refresh {"wedding"}``, ``POST /api/session/sign-out``,
  ``POST /api/session/sign-out-all``, ``GET /api/session/devices``,
  ``PATCH /api/session/devices/{device_id}``, ``DELETE /api/session/devices/{device_id}``:
  what the cookie allows; each answers 403 to a cookie's request from another origin
  (:func:`crdt_server.edge.identity.same_origin`). A native app's ``Authorization: Device
  <secret>`` is taken here, and only here.

Other features start a device session with :func:`sign_in_device` and send a link with
:func:`send_sign_in_link` (the package exports both).
"""

from __future__ import annotations

import json
from typing import Annotated, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, UnsetType
from starlette.responses import Response

from crdt_server.auth.tokens import valid_email
from crdt_server.edge.identity import SESSION_COOKIE, same_origin
from crdt_server.edge.links import listening_on, server_url
from crdt_server.edge.params import WeddingId
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import (
    Forbidden,
    Impossible,
    NotAMember,
    NotFound,
    SessionEnded,
    TooMany,
    Unauthenticated,
)
from crdt_server.features.events import EventLog
from crdt_server.features.signin.domain import Challenge, Client, DeviceName, Proof, Verifier
from crdt_server.features.signin.extension import (
    ACCESS_TOKEN_SECONDS,
    DeviceSessions,
    Refreshed,
)
from crdt_server.features.signin.settings import SignInSettings
from crdt_server.features.signin.tables import MembershipRow
from crdt_server.settings import Settings, is_loopback
from crdt_server.storage import NewEvent
from crdt_server.times import rfc3339

__all__ = ["links_base", "send_sign_in_link", "session_routes", "sign_in_device"]

session_routes = Routes()

_COOKIE_PATH = "/api/session"
_LABEL_LENGTH = 120


class SignInRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    email: Annotated[str, Meta(max_length=254, description="the address to send the link to")]
    client: Client = "browser"
    code_challenge: Challenge | None = None
    """A native app's PKCE challenge (required with ``client`` ``app``, refused without)."""
    code_challenge_method: Literal["S256"] = "S256"


class SignInAccepted(msgspec.Struct, frozen=True):
    detail: str


class CompleteRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    code: Annotated[str, Meta(max_length=128, description="the code of the link's #code=")]
    client: Client = "browser"
    code_verifier: Verifier | None = None
    """Required when the link was asked for with a ``code_challenge``."""
    device_name: DeviceName | None = None
    """A native app's name for this device (else its ``User-Agent``)."""


class WeddingRole(msgspec.Struct, frozen=True):
    """One of the person's weddings and who they are in it."""

    wedding: str
    role: str
    sub: str
    name: str


class SignedInAnswer(msgspec.Struct, frozen=True):
    """The person's most recently used wedding's token (all ``null`` when they have no
    wedding), and every wedding of theirs."""

    token: str | None
    wedding: str | None
    role: str | None
    sub: str | None
    weddings: list[WeddingRole]
    expires_at: str | None = None
    """When ``token`` expires (RFC 3339 UTC)."""
    ambiguous: list[str] = []
    """Weddings where several members hold the address: the person became none of them
    (an organiser must give each member their own address)."""
    device_secret: str | UnsetType = msgspec.UNSET
    """A native app's device session secret (only with ``client`` ``app``): keep it in the
    keychain; ``Authorization: Device <secret>`` on ``/api/session/*`` only."""


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    wedding: WeddingId | None = None
    """The wedding to mint a token for; ``null``: the most recently used one."""


class RefreshAnswer(msgspec.Struct, frozen=True):
    token: str | None
    expires_at: str | None
    weddings: list[WeddingRole]
    wedding: str | None = None
    role: str | None = None
    sub: str | None = None
    device_secret: str | UnsetType = msgspec.UNSET
    """A native app's new device secret, when this refresh rotated it (once a day): keep
    it at once; the one it replaces works one more minute."""


class Device(msgspec.Struct, frozen=True):
    """One sign-in of the person: a browser with its device session (no place)."""

    id: str
    label: str
    signed_in_at: str
    last_used_at: str
    current: bool


class DevicesAnswer(msgspec.Struct, frozen=True):
    devices: list[Device]
    email: str | None = None
    """The person's verified address (``null``: none yet; "add your email" sends a link
    that verifies one: ``POST /api/session/email``)."""


class EmailClaim(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    email: Annotated[str, Meta(max_length=254, description="the address to add")]


class DeviceRename(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    label: DeviceName


class DevicePath(msgspec.Struct, frozen=True):
    device_id: Annotated[
        str, Meta(pattern="^d_[A-Za-z0-9_-]{1,64}$", description="a device session's id")
    ]


# -- what other features use --------------------------------------------------------------


def cookie_allowed(call: ApiCall) -> bool:
    """Whether a device session may be started for this request: over https (the public
    URL's, else the request's scheme), or on a server that listens on loopback only (a
    local install, where nothing on the network can read the cookie)."""
    settings = call.state.settings
    scheme = (
        urlsplit(settings.public_url).scheme if settings.public_url else call.request.url.scheme
    )
    return scheme == "https" or is_loopback(settings.host)


def set_session_cookie(response: Response, secret: str, settings: Settings) -> None:
    """Put a device session's secret in the response's cookie (``HttpOnly; Secure;
    SameSite=Strict``, sent only to ``/api/session``)."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(settings.fragment(SignInSettings).device_session_idle_days * 86400),
        path=_COOKIE_PATH,
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=_COOKIE_PATH, secure=True, httponly=True, samesite="strict"
    )


def device_label(call: ApiCall, name: str | None = None) -> str:
    """What the devices list calls this device: the ``name`` a native app gave, else its
    ``User-Agent``; printable and cut."""
    given = name if name is not None else call.request.headers.get("user-agent", "")
    shown = " ".join("".join(c for c in given if c.isprintable()).split())
    return shown[:_LABEL_LENGTH] or "unknown device"


def device_sign_in_allowed(call: ApiCall) -> bool:
    """Whether :func:`sign_in_device` would set a cookie for this request: it comes from the
    server's own page (same origin) over https, or to a server on loopback."""
    return same_origin(call.request, call.state.settings.public_url) and cookie_allowed(call)


async def sign_in_device(call: ApiCall, person: str, response: Response) -> str:
    """Start a device session for ``person`` (a ``p_...`` id from
    :meth:`DeviceSessions.person`) and set its cookie on ``response``; the device id.
    :class:`Forbidden` over plain http to a server reachable from the network, and for a
    request from another origin (a forged sign-in)."""
    _check_origin(call)
    if not cookie_allowed(call):
        raise Forbidden("signing in needs https (set CRDT_SERVER_PUBLIC_URL to an https URL)")
    sessions = call.state.extension(DeviceSessions)
    device, secret = await sessions.start_session(person, device_label(call))
    set_session_cookie(response, secret, call.state.settings)
    return device


async def send_sign_in_link(call: ApiCall, email: str, *, known: bool = False) -> bool:
    """Email a sign-in link to ``email`` now (through the notifications outbox), if it is a
    person's or a member's address, or ``known`` (the caller vouches for it: a new
    wedding's couple); within the per-address hourly limit. Whether one was queued."""
    sessions = call.state.extension(DeviceSessions)
    return await sessions.request_link(email, links_base(call), known=known)


def links_base(call: ApiCall) -> str:
    """The base URL of emailed links: ``CRDT_SERVER_PUBLIC_URL``, else the socket the
    request came in on (never its ``Host`` header): :func:`crdt_server.edge.links.server_url`
    on :func:`~crdt_server.edge.links.listening_on` the request."""
    return server_url(call.state.settings, listening_on(call.request))


# -- routes ---------------------------------------------------------------------------------


def _check_origin(call: ApiCall) -> None:
    if not same_origin(call.request, call.state.settings.public_url):
        raise Forbidden("this route answers the server's own pages only", field="Origin")


_ACCEPTED = SignInAccepted("if this address may sign in, a link to do so is on its way")


@session_routes.post(
    "/api/sign-in",
    "requestSignInLink",
    "Email a sign-in link (always 202, whatever the address)",
    family="read",
    security="none",
    response_model=SignInAccepted,
    status=202,
    errors=(400, 413, 422, 429),
    description="Always the same 202, answered before anything that depends on the "
    "address is looked at. An address that is no person's or member's gets no email; one "
    "address gets at most `CRDT_SERVER_SIGN_IN_PER_EMAIL_PER_HOUR` links an hour, one "
    "client address may ask `CRDT_SERVER_SIGN_IN_PER_ADDRESS_PER_HOUR` times (429). The "
    "link (`/app/sign-in#code=...`) works once, for 15 minutes; only the newest works. A "
    "native app sends `client` `app` and a PKCE `code_challenge` (S256): its link is "
    "`/app/sign-in-app#code=...` (the path the app claims), and its code signs in only "
    "with the matching `code_verifier`.",
)
async def request_sign_in(call: ApiCall, body: SignInRequest) -> Response:
    if not valid_email(body.email):
        raise Impossible("must be an email address", field="email")
    if (body.client == "app") != (body.code_challenge is not None):
        raise Impossible(
            "a native app (client app) sends a code_challenge, and only a native app does",
            field="code_challenge",
        )
    client = call.request.client
    sessions = call.state.extension(DeviceSessions)
    if not sessions.address_limiter.allow(client.host if client else "unknown"):
        raise TooMany("too many sign-in requests from this address", retry_after=600)
    sessions.request_link_later(body.email, links_base(call), body.code_challenge)
    return json_response(_ACCEPTED, status_code=202)


@session_routes.post(
    "/api/sign-in/complete",
    "completeSignIn",
    "Use a sign-in link's code: a token, the person's weddings, a device session cookie",
    family="write",
    security="none",
    response_model=SignedInAnswer,
    errors=(400, 401, 403, 413, 422, 429),
    description="The code works once, within 15 minutes, and only the newest of its "
    "address (401 otherwise). The answer's token is for the person's most recently used "
    "wedding (`null`s when they have none). Sets the `crdt_session` cookie (`HttpOnly; "
    "Secure; SameSite=Strict`, path `/api/session`). 403 from another origin, and over "
    "plain http to a server reachable from the network. A native app (`client` `app`, its "
    "`code_verifier` and `device_name`) gets `device_secret` in the body instead of the "
    "cookie, whatever its `Origin`. A code asked for with a `code_challenge` signs in only "
    "with the matching `code_verifier`, and a native app only with such a code (401 naming "
    "`code_verifier`; the code is used up all the same).",
)
async def complete_sign_in(call: ApiCall, body: CompleteRequest) -> Response:
    app = body.client == "app"
    if not app:
        _check_origin(call)
    if not cookie_allowed(call):
        raise Forbidden("signing in needs https (set CRDT_SERVER_PUBLIC_URL to an https URL)")
    sessions = call.state.extension(DeviceSessions)
    proof = Proof(app, body.code_verifier)
    signed_in = await sessions.complete(body.code, device_label(call, body.device_name), proof)
    if signed_in == "code_verifier":
        raise Unauthenticated(
            "this sign-in link was asked for by another client: the code_verifier does not "
            "match its code_challenge (ask for a new link)",
            field="code_verifier",
        )
    if isinstance(signed_in, str):
        raise Unauthenticated(
            "this sign-in link is not valid: used, expired or replaced by a newer one",
            field="code",
        )
    memberships = await sessions.memberships(signed_in.person)
    chosen = memberships[0] if memberships else None
    token, expires = await _token(call, sessions, chosen, signed_in.device, signed_in.person)
    answer = SignedInAnswer(
        token,
        chosen.wedding if chosen else None,
        chosen.role if chosen else None,
        chosen.sub if chosen else None,
        _weddings(memberships),
        expires,
        list(signed_in.ambiguous),
        signed_in.secret if app else msgspec.UNSET,
    )
    response = json_response(answer)
    response.headers["Cache-Control"] = "no-store"
    if not app:
        set_session_cookie(response, signed_in.secret, call.state.settings)
    return response


async def _token(
    call: ApiCall,
    sessions: DeviceSessions,
    membership: MembershipRow | None,
    sid: str,
    person: str,
) -> tuple[str | None, str | None]:
    if membership is None:
        return None, None
    codec = call.state.token_codec
    try:
        token = await sessions.mint(
            codec, membership, sid, min(call.state.settings.token_ttl_seconds, ACCESS_TOKEN_SECONDS)
        )
    except ValueError as exc:
        raise Forbidden("this server does not sign tokens (no HS256 secret)") from exc
    await sessions.used_wedding(person, membership.wedding)
    return token, rfc3339(codec.decode(token).exp, "seconds")


def _weddings(memberships: list[MembershipRow]) -> list[WeddingRole]:
    return [WeddingRole(m.wedding, m.role, m.sub, m.name) for m in memberships]


async def _session(call: ApiCall, *, rotate: bool = False) -> tuple[DeviceSessions, Refreshed]:
    """The caller's live device session (401 if the cookie or the ``Device`` secret holds
    none). A native app's secret is rotated only where the answer gives the new one
    (``rotate``: the refresh); a cookie's on any of these routes."""
    sessions = call.state.extension(DeviceSessions)
    secret = call.caller.secret
    app = call.caller.kind == "device"
    used = await sessions.use(secret, rotate=rotate or not app) if secret else None
    if used is None:
        field = "Authorization" if app else SESSION_COOKIE
        raise SessionEnded("no live device session: sign in again", field=field)
    return sessions, used


def _answer(value: object, used: Refreshed, call: ApiCall, status: int = 200) -> Response:
    response = Response(status_code=204) if status == 204 else json_response(value, status)
    response.headers["Cache-Control"] = "no-store"
    if used.secret is not None and call.caller.kind == "session":
        set_session_cookie(response, used.secret, call.state.settings)
    return response


_SESSION_ERRORS = (400, 401, 403, 413, 422, 429)


async def _revoked(call: ApiCall, sessions: DeviceSessions, person: str, device: str) -> None:
    """A ``session.revoked`` event in each of the person's weddings, credited to them as
    that wedding's member (``device``: the device's id, or ``all``). Personal: read by the
    person and by who manages the members (the sign-in feature.s ``session.`` rule)."""
    events = [
        NewEvent(
            m.wedding,
            "session.revoked",
            json.dumps({"sub": m.sub, "device": device}, separators=(",", ":")),
            sub=m.sub,
            role=m.role,
        )
        for m in await sessions.memberships(person)
    ]
    if events:
        await call.state.extension(EventLog).record(events)


@session_routes.post(
    "/api/session/refresh",
    "refreshDeviceSession",
    "A short access token for one wedding, from the device session's cookie or app secret",
    family="read",
    security="session",
    response_model=RefreshAnswer,
    errors=_SESSION_ERRORS,
    description="One wedding, the membership's current role, at most 15 minutes, carrying "
    "`sid`: a socket opened with it stays open past the token's `exp` until the device "
    "session ends. `wedding` `null`: the most recently used one. 401 without a live device "
    "session (signed out, revoked, idle for `CRDT_SERVER_DEVICE_SESSION_IDLE_DAYS`: problem "
    "type `urn:crdt-server:problem:session-ended`); 403 for a wedding the person is no "
    "member of (`urn:crdt-server:problem:not-a-member`), and from another origin. The cookie's "
    "secret is replaced once a day. A native app sends `Authorization: Device <secret>` "
    "instead of the cookie (no `Origin` rule); when its secret is replaced, the answer's "
    "`device_secret` is the new one (the old one works one more minute).",
)
async def refresh_session(call: ApiCall, body: RefreshRequest) -> Response:
    sessions, used = await _session(call, rotate=True)
    memberships = await sessions.memberships(used.person)
    chosen: MembershipRow | None = memberships[0] if memberships else None
    if body.wedding is not None:
        chosen = next((m for m in memberships if m.wedding == body.wedding), None)
        if chosen is None:
            raise NotAMember("you are no member of this wedding", field="wedding")
    token, expires = await _token(call, sessions, chosen, used.device, used.person)
    answer = RefreshAnswer(
        token,
        expires,
        _weddings(memberships),
        chosen.wedding if chosen else None,
        chosen.role if chosen else None,
        chosen.sub if chosen else None,
        used.secret if used.secret is not None and call.caller.kind == "device" else msgspec.UNSET,
    )
    return _answer(answer, used, call)


@session_routes.post(
    "/api/session/sign-out",
    "signOut",
    "End this device's session (its tokens stop, its sockets close with 4401)",
    family="write",
    security="session",
    status=204,
    errors=_SESSION_ERRORS,
)
async def sign_out(call: ApiCall) -> Response:
    sessions, used = await _session(call)
    await sessions.end(used.person, used.device)
    await _revoked(call, sessions, used.person, used.device)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@session_routes.post(
    "/api/session/sign-out-all",
    "signOutEverywhere",
    "End every device session of the person, this one too",
    family="write",
    security="session",
    status=204,
    errors=_SESSION_ERRORS,
)
async def sign_out_all(call: ApiCall) -> Response:
    sessions, used = await _session(call)
    await sessions.end(used.person)
    await _revoked(call, sessions, used.person, "all")
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@session_routes.get(
    "/api/session/devices",
    "listDevices",
    "The person's signed-in devices (label and times, no place)",
    family="read",
    security="session",
    response_model=DevicesAnswer,
    errors=_SESSION_ERRORS,
)
async def list_devices(call: ApiCall) -> Response:
    sessions, used = await _session(call)
    shown = [
        Device(
            d.id,
            d.label,
            rfc3339(d.created_at, "seconds"),
            rfc3339(d.last_used, "seconds"),
            d.id == used.device,
        )
        for d in await sessions.devices(used.person)
    ]
    email = await sessions.person_email(used.person)
    return _answer(DevicesAnswer(shown, email), used, call)


@session_routes.patch(
    "/api/session/devices/{device_id}",
    "renameDevice",
    "Rename one of the person's devices (what the devices list calls it)",
    family="write",
    security="session",
    response_model=Device,
    errors=(*_SESSION_ERRORS, 404),
)
async def rename_device(call: ApiCall, path: DevicePath, body: DeviceRename) -> Response:
    sessions, used = await _session(call)
    renamed = await sessions.rename(used.person, path.device_id, device_label(call, body.label))
    if renamed is None:
        raise NotFound("no such device of yours", field="device_id")
    shown = Device(
        renamed.id,
        renamed.label,
        rfc3339(renamed.created_at, "seconds"),
        rfc3339(renamed.last_used, "seconds"),
        renamed.id == used.device,
    )
    return _answer(shown, used, call)


@session_routes.delete(
    "/api/session/devices/{device_id}",
    "revokeDevice",
    "End one of the person's device sessions: its refresh ends, its tokens stop, its"
    " sockets close with 4401 in every process",
    family="write",
    security="session",
    status=204,
    errors=(*_SESSION_ERRORS, 404),
)
async def revoke_device(call: ApiCall, path: DevicePath) -> Response:
    sessions, used = await _session(call)
    if not await sessions.end(used.person, path.device_id):
        raise NotFound("no such device of yours", field="device_id")
    await _revoked(call, sessions, used.person, path.device_id)
    response = _answer(None, used, call, status=204)
    if path.device_id == used.device:
        clear_session_cookie(response)
    return response


@session_routes.post(
    "/api/session/email",
    "addSignInEmail",
    "Add your email: send a link that verifies it for this person",
    family="write",
    security="session",
    response_model=SignInAccepted,
    status=202,
    errors=_SESSION_ERRORS,
    description="For a person signed in on this device (joined by invitation without an "
    "address, or changing theirs). The link (`/app/sign-in#code=...`, the sign-in page) "
    "works once, for 15 minutes, only the newest; using it makes the address this "
    "person's (if another sign-in has it, the two become one person), makes them the "
    "member it identifies in each wedding where exactly one member holds it (several: "
    "none, as at a sign-in), and gives it to their memberships that have no address. At "
    "most `CRDT_SERVER_SIGN_IN_PER_EMAIL_PER_HOUR` links an hour per person (429), and "
    "`CRDT_SERVER_SIGN_IN_PER_ADDRESS_PER_HOUR` requests per client address.",
)
async def add_email(call: ApiCall, body: EmailClaim) -> Response:
    sessions, used = await _session(call)
    if not valid_email(body.email):
        raise Impossible("must be an email address", field="email")
    client = call.request.client
    if not sessions.address_limiter.allow(client.host if client else "unknown"):
        raise TooMany("too many requests from this address", retry_after=600)
    if not await sessions.request_claim(used.person, body.email, links_base(call)):
        raise TooMany("you were sent enough links this hour", field="email", retry_after=3600)
    accepted = SignInAccepted("a link to confirm this address is on its way: open it to add it")
    return _answer(accepted, used, call, 202)
