"""Creating a wedding and reading or changing its settings over HTTP.

``POST /api/weddings`` takes the admin API key, or no credential at all when
``CRDT_SERVER_OPEN_SIGNUP`` is on (then limited per client address, overall and per
email). It commits the new wedding's budget currency, then its profile together with the
creation record, the couple's member and the ``Idempotency-Key``'s answer, in one
transaction; only then is it answered, and the couple's first sign-in link queued.

``GET``/``PUT /api/weddings/{wedding_id}/settings``: the profile (the timeline's
``profile`` map) and the budget's currency; a ``PUT`` merges the fields it gives, through
the document like any HTTP operation (``weddings.settings``: couple and planner).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from pycrdt import Doc
from starlette.responses import Response

from crdt_server.actor import Actor
from crdt_server.core.hooks import Sender
from crdt_server.core.operation_keys import OperationKey
from crdt_server.documents import apply_operation
from crdt_server.documents.model import CURRENCY_PATTERN
from crdt_server.edge.guards import (
    capable_principal,
    document_principal,
    readable_documents,
    sender_of,
)
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, is_admin, json_response
from crdt_server.errors import Conflict, Forbidden, Malformed, Unauthenticated
from crdt_server.features.signin import (
    DeviceSessions,
    device_sign_in_allowed,
    send_sign_in_link,
    sign_in_device,
)
from crdt_server.features.weddings.domain import (
    NewWedding,
    new_couple_sub,
    new_wedding,
    new_wedding_id,
    profile_fields,
)
from crdt_server.features.weddings.extension import Weddings
from crdt_server.features.weddings.settings import WeddingSettings
from crdt_server.features.weddings.tables import creation_rows
from crdt_server.settings import is_loopback
from crdt_server.storage import FeatureRow

__all__ = ["SETTINGS_CAPABILITY", "wedding_routes"]

SETTINGS_CAPABILITY = "weddings.settings"
"""Who may change a wedding's settings (couple and planner by default)."""

wedding_routes = Routes()
_ERR = (400, 401, 403, 404, 429)


class NewWeddingBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What ``POST /api/weddings`` reads (checked by the domain, naming the field)."""

    names: Annotated[
        list[Annotated[str, Meta(min_length=1, max_length=100)]],
        Meta(min_length=1, max_length=2, description="the partners' names"),
    ]
    date: Annotated[str, Meta(description="the wedding day, ISO 8601 (2027-06-12)")]
    time_zone: Annotated[str, Meta(description="the day's IANA time zone (Europe/Lisbon)")]
    currency: Annotated[str, Meta(description="the budget's ISO 4217 currency (EUR)")]
    email: Annotated[
        str, Meta(max_length=254, description="the couple's email: their first sign-in link")
    ]
    your_name: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=100,
                description="the creator's own name: the couple's member is called so "
                "(default: the first of `names`)",
            ),
        ]
        | None
    ) = None


class SettingsBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What ``PUT .../settings`` reads: any of these (a merge; ``null`` clears one)."""

    names: list[str] | None = None
    date: str | None = None
    time_zone: str | None = None
    venue: str | None = None
    rsvp_deadline: str | None = None
    currency: str | None = None


class WeddingSettingsAnswer(msgspec.Struct, frozen=True):
    """A wedding's settings: its profile, and the budget's currency (``null`` for a role
    that may not read the budget, or none set)."""

    wedding_id: str
    names: list[str] | None
    date: str | None
    time_zone: str | None
    venue: str | None
    rsvp_deadline: str | None
    currency: str | None


class CreatedMember(msgspec.Struct, frozen=True):
    sub: str
    role: str


class NewWeddingAnswer(msgspec.Struct, frozen=True):
    """A created wedding: its id, settings, the couple's member, and whether their first
    sign-in link was queued (``sign_in_link``: ``queued`` or ``not_sent``)."""

    id: str
    settings: WeddingSettingsAnswer
    member: CreatedMember
    sign_in_link: str
    signed_in: bool = False
    """This device was signed in as the couple (the local operator of a loopback server with
    no admin key, from the app's page): ``POST /api/session/refresh`` gives the token."""


class SignInOptions(msgspec.Struct, frozen=True):
    """What the app's first page may offer a person who is not signed in."""

    create_wedding: bool
    """Whether ``POST /api/weddings`` would take this caller without a credential: open
    signup, or the local operator of a loopback server with no admin key."""
    open_signup: bool


def local_operator(call: ApiCall) -> bool:
    """The person at the machine a plain ``./scripts/serve`` runs on: a server listening on
    loopback with no admin key, called from loopback without a credential. They could read
    its store anyway; they are trusted as the admin key would be (as ``ALLOW_ANONYMOUS`` is
    on loopback)."""
    settings = call.state.settings
    client = call.request.client
    return (
        not settings.admin_api_key
        and call.caller.kind == "none"
        and is_loopback(settings.host)
        and client is not None
        and is_loopback(client.host)
    )


@wedding_routes.get(
    "/api/sign-in/options",
    "getSignInOptions",
    "What the app's first page may offer: creating a wedding (open signup, or the local "
    "operator of a loopback server with no admin key)",
    family="public",
    security="none",
    response_model=SignInOptions,
)
async def sign_in_options(call: ApiCall) -> Response:
    open_signup = call.state.settings.fragment(WeddingSettings).open_signup
    answer = json_response(SignInOptions(open_signup or local_operator(call), open_signup))
    answer.headers["Cache-Control"] = "no-store"
    return answer


@wedding_routes.post(
    "/api/weddings",
    "createWedding",
    "Create a wedding with its profile (admin key; anyone with open signup); "
    "Idempotency-Key honoured",
    family="admin",
    # Documented as the admin key's; open signup (no credential) is the description's.
    security="admin",
    accepts=frozenset({"admin", "jwt", "none"}),
    body="json",
    request_model=NewWeddingBody,
    response_model=NewWeddingAnswer,
    status=201,
    also=(200,),
    errors=(400, 401, 403, 409, 413, 429, 503),
    description=(
        "The server makes the wedding's id (opaque). The local operator of a loopback "
        "server with no admin key (a call from loopback without a credential) counts as the "
        "admin key, and from the app's page is signed in as the couple (`signed_in`). "
        "Otherwise, without the admin key the route is "
        "open only when `CRDT_SERVER_OPEN_SIGNUP=true` (401 without a credential, 403 "
        "with a token otherwise), limited per client address and overall an hour and per "
        "email (`CRDT_SERVER_MAX_WEDDINGS_PER_PERSON`), 429 past them. `Idempotency-Key` "
        "(1 to 255 characters), scoped to the caller and this route, kept 24 h: the same "
        "key with the same body answers the first answer again (200, header "
        "`Idempotent-Replayed: true`); with another body, 409."
    ),
)
async def create_wedding(call: ApiCall) -> Response:
    settings = call.state.settings.fragment(WeddingSettings)
    local = local_operator(call)
    admin = is_admin(call) or local
    if not admin and not settings.open_signup:
        if call.caller.kind == "jwt":
            raise Forbidden("creating a wedding needs the admin API key (open signup is off)")
        raise Unauthenticated("creating a wedding needs the admin API key (open signup is off)")
    data = call.json(dict[str, Any])
    wanted = new_wedding(data)
    client = call.request.client
    address = client.host if client else "unknown"
    once = _creation_key(call, admin, address)
    keys = call.state.weddings.keys
    if once is None:
        made = await _create(call, wanted, admin=admin, address=address, once=None)
        return await _sign_in_locally(call, made, wanted) if local else made
    async with keys.held(once):
        first = await keys.first(once)
        if first is not None:
            if first.fingerprint != once.fingerprint:
                raise Conflict(
                    "this Idempotency-Key was used with another body", field="Idempotency-Key"
                )
            replayed = Response(first.answer, media_type="application/json")
            replayed.headers["Idempotent-Replayed"] = "true"
            return replayed
        made = await _create(call, wanted, admin=admin, address=address, once=once)
        return await _sign_in_locally(call, made, wanted) if local else made


async def _sign_in_locally(call: ApiCall, made: Response, wanted: NewWedding) -> Response:
    """The local operator who created a wedding from the app's page is signed in on this
    device as its couple (a person with the address they gave, their membership, the device
    session's cookie): the app opens the wedding at once."""
    if not device_sign_in_allowed(call):
        return made  # a script on the machine (curl): the wedding, no cookie
    answer = msgspec.json.decode(made.body, type=NewWeddingAnswer)
    sessions = call.state.extension(DeviceSessions)
    person = await sessions.person(wanted.email)
    await sessions.add_membership(person, answer.id, answer.member.sub)
    body = msgspec.json.encode(msgspec.structs.replace(answer, signed_in=True))
    signed = Response(body, status_code=made.status_code, media_type="application/json")
    await sign_in_device(call, person, signed)
    return signed


def _creation_key(call: ApiCall, admin: bool, address: str) -> OperationKey | None:
    key = call.request.headers.get("idempotency-key")
    if key is None or not call.state.weddings.keys.installed:
        return None
    if not 1 <= len(key) <= 255:
        raise Malformed("1 to 255 characters", field="Idempotency-Key")
    caller = "admin" if admin else f"addr:{address}"
    return OperationKey(
        "", f"~weddings:{caller}:POST /api/weddings", key, hashlib.sha256(call.body).hexdigest()
    )


async def _create(
    call: ApiCall, wanted: NewWedding, *, admin: bool, address: str, once: OperationKey | None
) -> Response:
    extension = call.state.extension(Weddings)
    if not admin:
        await extension.admit_signup(address, wanted.email)
    wedding, sub = new_wedding_id(), new_couple_sub()
    # The wedding's first lines are its creator's ("Ann added 14 tasks"), whoever's key
    # made the call: the admin key makes it on the couple's behalf.
    sender = Sender(Actor(sub, "couple"), f"http:{sub}")
    weddings = call.state.weddings
    await weddings.operate(wedding, "budget", wanted.currency_op(), sender)
    # The default checklist, by fixed ids (a retry adds nothing twice).
    await weddings.operate(wedding, "tasks", {"op": "seed_checklist"}, sender)
    answer: list[bytes] = []

    def rows(result: dict[str, Any]) -> list[FeatureRow]:
        del result
        made = NewWeddingAnswer(
            wedding,
            WeddingSettingsAnswer(
                wedding,
                list(wanted.names),
                wanted.date,
                wanted.time_zone,
                None,
                None,
                wanted.currency,
            ),
            CreatedMember(sub, "couple"),
            # What a retry answers: the link goes out right after this commit.
            "queued",
        )
        answer.append(msgspec.json.encode(made))
        # Operator-set when the admin key made it (the email identifies the couple);
        # through open signup a sign-in link verifies it first (creator_verified).
        kept = creation_rows(wedding, sub, wanted, verified=admin, open_signup=not admin)
        if once is not None:
            keyed = OperationKey(wedding, once.scope, once.key, once.fingerprint)
            kept.append(weddings.keys.row(keyed, answer[0].decode()))
        return kept

    await weddings.operate(wedding, "timeline", wanted.profile_op(), sender, rows=rows)
    queued = await send_sign_in_link(call, wanted.email, known=True)
    body = answer[0]
    if not queued:
        # This address was sent too many links this hour: say so now (a retry answers the
        # first, committed answer); the couple asks for one later on the sign-in page.
        decoded = msgspec.json.decode(body, type=NewWeddingAnswer)
        body = msgspec.json.encode(msgspec.structs.replace(decoded, sign_in_link="not_sent"))
    return Response(body, status_code=201, media_type="application/json")


async def _settings(call: ApiCall, wedding: str, *, budget: bool) -> WeddingSettingsAnswer:
    weddings = call.state.weddings
    profile = (await weddings.read_json(wedding, "timeline")).get("profile") or {}
    currency = None
    if budget:
        found = (await weddings.read_json(wedding, "budget")).get("currency")
        currency = found if isinstance(found, str) and CURRENCY_PATTERN.fullmatch(found) else None
    return WeddingSettingsAnswer(
        wedding,
        profile.get("names"),
        profile.get("date"),
        profile.get("time_zone"),
        profile.get("venue"),
        profile.get("rsvp_deadline"),
        currency,
    )


def _reads_budget(call: ApiCall, wedding: str) -> bool:
    """Whether the caller sees the budget's currency (it reads the budget)."""
    return is_admin(call) or "budget" in readable_documents(call, wedding)


@wedding_routes.get(
    "/api/weddings/{wedding_id}/settings",
    "readWeddingSettings",
    "The wedding's profile (names, date, time zone, venue, RSVP deadline) and currency",
    family="read",
    accepts=frozenset({"jwt", "admin"}),
    response_model=WeddingSettingsAnswer,
    errors=_ERR,
)
async def read_settings(call: ApiCall, path: WeddingPath) -> Response:
    wedding = path.wedding_id
    if not is_admin(call):
        document_principal(call, wedding, "timeline", write=False)
    return json_response(await _settings(call, wedding, budget=_reads_budget(call, wedding)))


@wedding_routes.put(
    "/api/weddings/{wedding_id}/settings",
    "changeWeddingSettings",
    "Change the fields given of the wedding's profile and its currency "
    "(capability weddings.settings: couple and planner)",
    family="write",
    accepts=frozenset({"jwt", "admin"}),
    body="json",
    request_model=SettingsBody,
    response_model=WeddingSettingsAnswer,
    errors=(*_ERR, 413, 422, 503),
    description=(
        "A merge: the fields given are written (`null` clears one), the others kept. "
        "Written through the documents (the timeline's `profile`, the budget's currency) "
        "like any HTTP operation and answered once committed; a wedding whose documents "
        "have no profile yet gets one. 400 names a bad or unknown field; 422 a currency "
        "the budget's amounts are not in."
    ),
)
async def change_settings(call: ApiCall, path: WeddingPath) -> Response:
    wedding = path.wedding_id
    if is_admin(call):
        sender = Sender(Actor("admin", "admin"), "http:admin")
    else:
        principal = capable_principal(call, wedding, SETTINGS_CAPABILITY)
        document_principal(call, wedding, "timeline", write=True)
        sender = sender_of(principal)
    fields, currency = profile_fields(call.json(dict[str, Any]))
    weddings = call.state.weddings
    profile = {"op": "set_profile", **fields}
    if fields:
        # Its fields are checked before the currency is written: a bad one (400) changes
        # nothing at all. On an empty document: a profile operation's checks are its
        # arguments' (it refuses nothing as impossible).
        apply_operation(Doc(), "timeline", profile)
    if currency is not None:
        if not is_admin(call):
            document_principal(call, wedding, "budget", write=True)
        currency_op = {"op": "set_currency", "currency": currency}
        await weddings.operate(wedding, "budget", currency_op, sender)
    if fields:
        await weddings.operate(wedding, "timeline", profile, sender)
    return json_response(await _settings(call, wedding, budget=_reads_budget(call, wedding)))
