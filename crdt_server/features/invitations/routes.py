"""Invitations over HTTP: make one, list them, revoke one (``members.invite``, under the
ceiling of :mod:`.domain`), and accept one (no credential: the code is it).

The link carries the code in its fragment (``/app/invite#code=...``), which browsers never
send to a server: opening it redeems nothing (mail scanners open links), the page's button
posts ``POST /api/invitations/accept``. Codes are tried at most
``CRDT_SERVER_INVITATION_ATTEMPTS_PER_MINUTE`` times a minute per client address (per
process, beside the ``threads`` family's limit); a wrong code and an unknown one get the
same 404, and only a code whose secret matched can learn that its invitation is gone (410).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server import clock
from crdt_server.auth.permissions import (
    DEFAULT_GUEST_FIELDS,
    Access,
    PermissionsError,
    parse_overrides,
)
from crdt_server.auth.principals import Principal
from crdt_server.auth.tokens import valid_email
from crdt_server.edge.bodies import GuestFields, Page, Role
from crdt_server.edge.guards import capable_principal
from crdt_server.edge.links import (
    PublicUrlMissing,
    missing_public_url,
    outbound_url,
    public_url,
)
from crdt_server.edge.params import PageLimit, WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import (
    Forbidden,
    Gone,
    Impossible,
    Malformed,
    NotFound,
    TooMany,
    Unavailable,
)
from crdt_server.features.invitations.domain import (
    DEFAULT_EXPIRES_IN,
    MANY_USE_ROLES,
    MAX_EXPIRES_IN,
    MAX_USES,
    MIN_EXPIRES_IN,
    grant_refusal,
    narrowing_refusal,
    new_code,
    new_member_sub,
    split_code,
)
from crdt_server.features.invitations.extension import Invitations
from crdt_server.features.invitations.tables import EmailState, InvitationRow
from crdt_server.features.signin import (
    DeviceSessions,
    app_sign_in_allowed,
    device_sign_in_allowed,
    normal_email,
    send_sign_in_link,
    sign_in_app,
    sign_in_device,
)
from crdt_server.names import header_name
from crdt_server.times import rfc3339

__all__ = ["granter", "invitation_routes", "plain_text", "start_device_session"]

_BASE = "/api/weddings/{wedding_id}/invitations"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

invitation_routes = Routes()

InvitationId = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{16}$", description="an invitation's id")]


class InvitationPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    invitation_id: InvitationId


class NewInvitation(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    role: Role
    name: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    """Who it is for, as the inviter calls them (shown in the list)."""
    email: Annotated[str, Meta(max_length=254)] | None = None
    """Their address: the link is emailed to it (within the wedding's daily count); it
    makes nobody a member."""
    uses: Annotated[int, Meta(ge=1, le=MAX_USES)] = 1
    """How many people it lets in: more than one only for family and friends."""
    expires_in: Annotated[int, Meta(ge=MIN_EXPIRES_IN, le=MAX_EXPIRES_IN)] = DEFAULT_EXPIRES_IN
    """Seconds until it expires (7 days unless said)."""
    documents: Annotated[dict[str, str], Meta(max_length=8)] | None = None
    """Document -> access (``write``, ``operate``, ``read``, ``none``): a narrowing of the
    role's access, never a widening."""
    guest_fields: GuestFields | None = None
    """A vendor's only: what they read of the guest list: ``nothing``, ``counts`` (the
    headcount, meal and dietary totals; the default), ``names`` (the guest list without
    meals and dietary needs) or ``names_meals`` (with them: a caterer's). The couple and
    planner change it later (``PATCH .../members/{sub}``)."""


class CreatedInvitation(msgspec.Struct, frozen=True):
    id: str
    url: str
    code: str
    expires_at: str
    uses_left: int
    emailed: Literal["queued", "not_sent"] | None = None
    """With an ``email``: whether the link was emailed to it (``null`` without one)."""
    not_sent_because: Literal["daily_limit", "unverified_creator", "email_off"] | None = None
    """Why not: the wedding sent its ``CRDT_SERVER_INVITATION_EMAILS_PER_DAY`` today, its
    creator (open signup) has not verified their email yet, or this server sends no
    email. The invitation is made all the same: share its ``url`` yourself."""
    public_url_missing: PublicUrlMissing = msgspec.UNSET
    """``url`` came from this request's host: the server has no public URL (see
    :func:`crdt_server.edge.links.missing_public_url`)."""


class InvitationsQuery(msgspec.Struct, frozen=True):
    after: Annotated[str, Meta(max_length=64, description="the cursor of the last page")] = ""
    limit: PageLimit = 50


class InvitationsAnswer(Page[dict[str, Any], str], frozen=True):
    items: list[dict[str, Any]] = msgspec.field(name="invitations")


class Acceptance(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    code: Annotated[str, Meta(min_length=1, max_length=128)]
    name: Annotated[str, Meta(min_length=1, max_length=256)]
    """How the other members will see them."""
    email: Annotated[str, Meta(max_length=254)] | None = None
    """Their address. Verified by joining where the invitation (single-use) was emailed to
    exactly it; else kept with how they joined, unconfirmed until a link confirms it: it
    never makes them an existing member by itself."""
    client: Literal["browser", "app"] = "browser"
    """``app``: a native app, which gets its device session's secret in the answer
    (``device_secret``) instead of a cookie. An invitation's code was made by its inviter,
    not asked for by the app, so it takes no PKCE ``code_verifier``."""
    device_name: Annotated[str, Meta(min_length=1, max_length=120)] | None = None
    """A native app's name for this device (else its ``User-Agent``)."""


class Accepted(msgspec.Struct, frozen=True):
    token: str
    wedding: str
    role: str
    sub: str
    device_secret: str | msgspec.UnsetType = msgspec.UNSET
    """A native app's device session secret (``client`` ``app`` only): keep it in the
    keychain; ``Authorization: Device <secret>`` on ``/api/session/*`` only."""
    email: EmailState | None = None
    """What became of the address given (``null``: none): ``verified`` (the invitation
    was emailed to it: it is theirs in the directory, and this device's), ``sign_in_link``
    (verified, but another sign-in's: a sign-in link went to it, and using it makes that
    person this member), ``unconfirmed`` (any other: the app asks them to confirm it)."""


def plain_text(value: str, field: str) -> str:
    """``value`` without surrounding spaces; 422 naming ``field`` if it holds a control
    character or nothing else."""
    value = value.strip()
    if not value or _CONTROL.search(value):
        raise Impossible("1 to 256 characters, no control characters", field=field)
    return value


def granter(call: ApiCall, wedding: str, capability: str) -> tuple[Principal, dict[str, Access]]:
    """The caller, if their role has ``capability``, and their token's document overrides
    (what the ceiling compares a grant with)."""
    principal = capable_principal(call, wedding, capability)
    claims = call.caller.claims
    return principal, dict(claims.docs) if claims is not None else {}


def _shown(row: InvitationRow, now: float) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "name": row.name,
        "email": row.email,
        "documents": row.narrowing or None,
        "guest_fields": row.guest_fields,
        "uses": row.uses,
        "uses_left": row.uses_left,
        "state": row.state(now),
        "created_at": rfc3339(row.created_at),
        "expires_at": rfc3339(row.expires_at),
        "inviter": {"sub": row.inviter, "role": row.inviter_role},
    }


@invitation_routes.post(
    _BASE,
    "createInvitation",
    "Invite someone with a link (members.invite; never above your own access)",
    family="threads",
    response_model=CreatedInvitation,
    status=201,
    errors=(400, 401, 403, 404, 413, 422, 429),
    description="With `email`, the link is emailed to it through the outbox, at most "
    "`CRDT_SERVER_INVITATION_EMAILS_PER_DAY` a wedding a day (UTC), and for a wedding made "
    "through open signup only once its creator's email is verified by a sign-in link. "
    "The invitation is made either way (201): `emailed` says `queued` or `not_sent`, "
    "`not_sent_because` why (`daily_limit`, `unverified_creator`, `email_off`); the "
    "inviter shares its `url` themselves then.",
)
async def create_invitation(call: ApiCall, path: WeddingPath, body: NewInvitation) -> Response:
    wedding = path.wedding_id
    principal, mine = granter(call, wedding, "members.invite")
    permissions = call.state.permissions
    documents: dict[str, Access] = {}
    if body.documents is not None:
        try:
            documents = parse_overrides(body.documents, "documents")
        except PermissionsError as exc:
            raise Impossible(str(exc), field="documents") from exc
        narrowed = narrowing_refusal(permissions, body.role, documents)
        if narrowed is not None:
            raise Impossible(narrowed[0], field=narrowed[1])
    refused = grant_refusal(permissions, principal.role, mine, body.role, documents)
    if refused is not None:
        raise Forbidden(refused[0], field=refused[1])
    if body.uses > 1 and body.role not in MANY_USE_ROLES:
        raise Impossible(
            "only family and friend invitations may be used more than once", field="uses"
        )
    if body.guest_fields is not None and body.role != "vendor":
        raise Impossible(
            "only a vendor's invitation says what they read of the guest list", field="guest_fields"
        )
    guest_fields = body.guest_fields or (DEFAULT_GUEST_FIELDS if body.role == "vendor" else None)
    name = None if body.name is None else plain_text(body.name, "name")
    if body.email is not None and not valid_email(body.email):
        raise Impossible("must be an email address", field="email")
    invitations = call.state.extension(Invitations)
    most = invitations.settings.open_invitations_per_wedding
    if await invitations.open_count(wedding) >= most:
        raise TooMany(f"this wedding has {most} open invitations: revoke some first")
    invitation, code, digest = new_code()
    now = clock.now()
    row = InvitationRow(
        id=invitation,
        wedding=wedding,
        digest=digest,
        role=body.role,
        name=name,
        email=body.email,
        documents=msgspec.json.encode({d: a.value for d, a in documents.items()}).decode()
        if documents
        else "",
        uses=body.uses,
        uses_left=body.uses,
        expires_at=now + body.expires_in,
        created_at=now,
        inviter=principal.user_id,
        inviter_role=principal.role,
        revoked_at=0.0,
        guest_fields=guest_fields,
    )
    await invitations.create(row)
    page = f"/app/invite#code={code}"
    settings = call.state.settings
    # The answer's link is the caller's (their request's host when there is no public
    # URL); the emailed one leaves them, so never from the request's Host.
    answer = CreatedInvitation(
        invitation,
        public_url(call.request, settings, page),
        code,
        rfc3339(row.expires_at),
        row.uses_left,
        public_url_missing=missing_public_url(settings),
    )
    if body.email is not None:
        mailed = await invitations.email(
            wedding,
            body.email,
            *_invitation_email(principal, row, outbound_url(call.request, settings, page)),
        )
        answer = msgspec.structs.replace(
            answer,
            emailed="queued" if mailed == "queued" else "not_sent",
            not_sent_because=None if mailed == "queued" else mailed,
        )
    response = json_response(answer, status_code=201)
    response.headers["Cache-Control"] = "no-store"
    return response


def _invitation_email(principal: Principal, row: InvitationRow, url: str) -> tuple[str, str]:
    """An invitation email's subject and body: who invites, as which role, the link (it
    redeems nothing when opened), when it expires. The inviter's name reaches the
    ``Subject`` only through the one header rule (:func:`crdt_server.names.header_name`:
    no ``<>@,;:"``, no control characters), then the outbox's ``subject_line``."""
    inviter = " ".join(principal.name.split())[:64] or "Someone"
    named = header_name(principal.name) or "Someone"
    days = max(1, round((row.expires_at - row.created_at) / 86400))
    body = (
        f"{inviter} invites you to plan a wedding with them, as {row.role}.\n\n"
        f"Open this link to join (you give your name on the page):\n\n{url}\n\n"
        f"It works for {days} day{'s' if days != 1 else ''}"
        f"{'' if row.uses == 1 else f' and lets {row.uses} people in'}. If you did not"
        " expect it, ignore this email.\n"
    )
    return f"{named} invited you to plan a wedding", body


@invitation_routes.get(
    _BASE,
    "listInvitations",
    "The wedding's invitations, newest first (members.invite)",
    family="read",
    response_model=InvitationsAnswer,
    errors=(400, 401, 403, 404, 429),
)
async def list_invitations(call: ApiCall, path: WeddingPath, query: InvitationsQuery) -> Response:
    wedding = path.wedding_id
    granter(call, wedding, "members.invite")
    before = _cursor(query.after) if query.after else None
    rows = await call.state.extension(Invitations).of(wedding, limit=query.limit, before=before)
    now = clock.now()
    following = f"{rows[-1].created_at!r}.{rows[-1].id}" if len(rows) == query.limit else None
    return json_response(InvitationsAnswer([_shown(r, now) for r in rows], following))


def _cursor(after: str) -> tuple[float, str]:
    at, _, last = after.rpartition(".")
    try:
        moment = float(at)
    except ValueError:
        moment = -1.0
    if moment < 0 or not re.fullmatch(r"[A-Za-z0-9_-]{16}", last):
        raise Malformed("not a cursor of this list", field="after")
    return moment, last


@invitation_routes.delete(
    f"{_BASE}/{{invitation_id}}",
    "revokeInvitation",
    "Revoke an invitation: its code stops working (410)",
    family="threads",
    status=204,
    errors=(401, 403, 404, 429),
)
async def revoke_invitation(call: ApiCall, path: InvitationPath) -> Response:
    wedding = path.wedding_id
    principal, mine = granter(call, wedding, "members.invite")
    invitations = call.state.extension(Invitations)
    row = await invitations.one(wedding, path.invitation_id)
    if row is None:
        raise NotFound("no such invitation", field="invitation_id")
    narrowing = parse_overrides(row.narrowing) if row.narrowing else {}
    if grant_refusal(call.state.permissions, principal.role, mine, row.role, narrowing):
        raise Forbidden(f"you may not revoke an invitation of the {row.role} role")
    await invitations.revoke(wedding, row.id)
    return Response(status_code=204)


@invitation_routes.post(
    "/api/invitations/accept",
    "acceptInvitation",
    "Join a wedding with an invitation's code (no credential: the code is it)",
    family="threads",
    security="none",
    response_model=Accepted,
    status=201,
    errors=(400, 403, 404, 410, 413, 422, 429, 503),
    description="From the server's own page (same origin, https or loopback) the joined "
    "person's device session starts in the `crdt_session` cookie. A native app sends "
    "`client` `app` (and `device_name`): its device session's secret comes in the body "
    "(`device_secret`), whatever its `Origin`; 403 over plain http to a server reachable "
    "from the network, before the code is tried. An `email` is verified by joining where "
    "the invitation was single-use and emailed to exactly that address (compared in lower "
    "case, without surrounding spaces) and no other member of the wedding has it: it "
    "becomes the member's address (`email: verified`), unless it is already a person's, "
    "who then becomes this member by the sign-in link sent to it (`sign_in_link`). Any "
    "other address is kept unconfirmed (`unconfirmed`) until the person confirms it "
    "(`POST /api/session/email`).",
)
async def accept_invitation(call: ApiCall, body: Acceptance) -> Response:
    invitations = call.state.extension(Invitations)
    client = call.request.client
    if not invitations.attempt(client.host if client else "unknown"):
        raise TooMany("too many invitation codes tried, slow down", retry_after=60)
    name = plain_text(body.name, "name")
    email = None if body.email is None else body.email.strip() or None
    if email is not None and not valid_email(email):
        raise Impossible("must be an email address", field="email")
    parts = split_code(body.code)
    if parts is None:
        raise NotFound("no invitation has this code", field="code")
    codec = call.state.token_codec
    if not codec.can_mint:
        raise Unavailable("this server cannot sign tokens (it has no HS256 secret)")
    app = body.client == "app"
    if app and not app_sign_in_allowed(call):
        raise Forbidden("signing in needs https (set CRDT_SERVER_PUBLIC_URL to an https URL)")
    sub = new_member_sub()
    joined = await invitations.redeem(*parts, sub=sub, name=name, email=email)
    row = joined.invitation
    if joined.outcome == "unknown" or row is None:
        raise NotFound("no invitation has this code", field="code")
    if joined.outcome != "joined":
        raise Gone(f"this invitation is {row.state(clock.now())}", field="code")
    token = codec.mint(
        sub=sub,
        role=row.role,
        wedding=row.wedding,
        name=name,
        ttl=call.state.settings.token_ttl_seconds,
        docs=row.narrowing,
        guest_fields=row.guest_fields,
    )
    state = joined.email
    if state == "sign_in_link" and email is not None:
        # The address is an existing person's: they become this member by using the link.
        await send_sign_in_link(call, email)
    verified = normal_email(email) if state == "verified" and email else None
    if app:
        person = await _joined_person(call, row.wedding, sub, verified)
        secret = await sign_in_app(call, person, body.device_name)
        accepted = Accepted(token, row.wedding, row.role, sub, secret, state)
        response = json_response(accepted, status_code=201)
        response.headers["Cache-Control"] = "no-store"
        return response
    answer = Accepted(token, row.wedding, row.role, sub, email=state)
    response = json_response(answer, status_code=201)
    response.headers["Cache-Control"] = "no-store"
    await start_device_session(call, response, wedding=row.wedding, sub=sub, email=verified)
    return response


async def _joined_person(call: ApiCall, wedding: str, sub: str, email: str | None) -> str:
    """The person who joined as the member ``sub`` of ``wedding`` (from the server's page
    or a native app): a new person with ``email`` where joining verified it and no person
    has it, else a new one with no address."""
    sessions = call.state.extension(DeviceSessions)
    person = await sessions.person(email)
    await sessions.add_membership(person, wedding, sub)
    return person


async def start_device_session(
    call: ApiCall, response: Response, *, wedding: str, sub: str, email: str | None
) -> None:
    """Give a person who just joined by invitation a device session (the ``HttpOnly`` cookie
    scoped to ``/api/session``) when they joined from the server's own page (same origin,
    and https or loopback), as the member ``sub`` of ``wedding``: a new person with
    ``email`` as their address when joining verified it and no person has it, else a new
    person with none (an address given but unconfirmed, or another person's, must not make
    them that person: a link to it does). A client calling the API itself gets the
    answer's token only."""
    if not device_sign_in_allowed(call):
        return
    await sign_in_device(call, await _joined_person(call, wedding, sub, email), response)
