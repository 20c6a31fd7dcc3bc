"""The member directory over HTTP: list members, add or replace one, erase one, and the
unsubscribe link of every notification email.

Every member route records its caller in the directory (:func:`member_principal`), as a
connection does; member writes count against the ``threads`` rate-limit family
(``CRDT_SERVER_RATE_THREADS_PER_MINUTE``).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta
from starlette.responses import HTMLResponse, Response

from crdt_server.auth.principals import Principal
from crdt_server.auth.tokens import valid_email, valid_sub
from crdt_server.edge.bodies import GuestFields, Role
from crdt_server.edge.guards import readable_documents, wedding_principal
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, is_admin, json_response
from crdt_server.errors import Forbidden, Impossible, Malformed, NotFound, Unavailable
from crdt_server.features.events import EventLog
from crdt_server.features.invitations import Invitations, member_edit_refusal, member_event
from crdt_server.features.people.domain import Member, member_json
from crdt_server.features.people.extension import People
from crdt_server.features.signin import DeviceSessions, links_base
from crdt_server.storage import NewEvent, StoreError

__all__ = ["MemberPath", "MemberSub", "member_principal", "people_routes"]

MemberSub = Annotated[
    str, Meta(pattern="^[^\\x00-\\x1f\\x7f]{1,256}$", description="a member's user id")
]


class MemberPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    sub: MemberSub


_BASE = "/api/weddings/{wedding_id}"
_ERR = (400, 401, 403, 404, 429)

people_routes = Routes()


async def member_principal(
    call: ApiCall, wedding: str, readable: set[str] | None = None
) -> Principal:
    """The caller as a member of the wedding (403 if they may read none of it, 401 on a bad
    token), recorded in the directory like a connection (``readable``: the documents they
    may read, when the caller knows them already)."""
    principal = wedding_principal(call, wedding, readable or readable_documents(call, wedding))
    if principal.authenticated and principal.member:
        await call.state.extension(People).see(
            wedding, principal.user_id, principal.role, principal.name, principal.email
        )
    return principal


class MemberBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    role: Role
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None


class MembersAnswer(msgspec.Struct, frozen=True):
    members: list[dict[str, Any]]


class PutMemberPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    sub: Annotated[
        str,
        Meta(
            description="a member's user id: 1 to 256 characters, no control characters",
            extra_json_schema={"pattern": "^[^\\x00-\\x1f\\x7f]{1,256}$"},
        ),
    ]
    """Not :data:`MemberSub`: a sub the directory cannot hold is a 400 naming ``sub`` here
    (a client's mistake in what it sends), not a 404; the pattern is only documented."""


class UnsubscribeQuery(msgspec.Struct, frozen=True):
    key: Annotated[str, Meta(description="the key of the email's unsubscribe link")] = ""


@people_routes.get(
    f"{_BASE}/members",
    "listMembers",
    "The wedding's member directory (emails to managers and oneself)",
    description="Where a member's `email` is shown, `email_confirmed` says whether it is "
    "verified (`false`: set but no link to it used yet, or given when joining and not "
    "confirmed, then `email` is `null`; `null`: no address at all).",
    family="read",
    response_model=MembersAnswer,
    errors=_ERR,
)
async def list_members(call: ApiCall, path: WeddingPath) -> Response:
    principal = await member_principal(call, path.wedding_id)
    manager = call.state.permissions.can(principal.role, "members.manage")
    wedding = path.wedding_id
    members = await call.state.extension(People).members(wedding)
    shown = [member_json(m, with_email=manager or m.sub == principal.user_id) for m in members]
    confirmed, given = await _addresses(call, wedding)
    for entry in shown:
        if "email" in entry:
            # Whose address is unconfirmed: set but no link to it used yet, or given when
            # joining and not confirmed (null: no address at all).
            sub = entry["sub"]
            entry["email_confirmed"] = (
                sub in confirmed if entry["email"] else (False if sub in given else None)
            )
    return json_response(MembersAnswer(shown))


async def _addresses(call: ApiCall, wedding: str) -> tuple[set[str], set[str]]:
    """The members whose address is verified, and those who gave one when joining that
    is not confirmed yet."""
    sessions = call.state.find(DeviceSessions)
    invitations = call.state.find(Invitations)
    return (
        set() if sessions is None else await sessions.verified_subs(wedding),
        set() if invitations is None else await invitations.unconfirmed(wedding),
    )


@people_routes.put(
    f"{_BASE}/members/{{sub}}",
    "putMember",
    "Add or replace a member (admin key, or members.manage under the invitations' ceiling)",
    description="The directory is authoritative: a changed role revokes the member's older "
    "tokens (their sockets close with 4401). An address set with the admin key identifies "
    "the member at a sign-in; one set by a member is sent a sign-in link, and identifies "
    "them once it is used.",
    family="threads",
    accepts=frozenset({"jwt", "admin"}),
    status=201,
    also=(200,),
    errors=(*_ERR, 413, 422),
)
async def put_member(call: ApiCall, path: PutMemberPath, body: MemberBody) -> Response:
    wedding = path.wedding_id
    principal = await _manager(call, wedding)
    if not valid_sub(path.sub):
        raise Malformed("1 to 256 characters, no control characters", field="sub")
    if body.email is not None and not valid_email(body.email):
        raise Impossible("must be an email address", field="email")
    people = call.state.extension(People)
    operator = principal is None
    if principal is None:
        actor = ("admin", "admin")
    else:
        actor = (principal.user_id, principal.role)
        await _check_ceiling(call, people, principal, path, body)
    member, replaced = await people.put_member(
        wedding, path.sub, body.role, body.name or path.sub, body.email, by_operator=operator
    )
    if replaced is not None and replaced.role != body.role:
        # The directory is authoritative: tokens minted with the old role stop (and their
        # sockets close); a device session mints the next ones with the new role. What
        # they set up (webhooks, feeds) goes on, under the new role's rules.
        await _revoke(call, path.sub, wedding)
        await call.state.extension(EventLog).record(
            [
                member_event(
                    wedding,
                    "role_changed",
                    {"sub": path.sub, "from": replaced.role, "to": body.role},
                    sub=actor[0],
                    role=actor[1],
                )
            ]
        )
    changed = replaced is None or replaced.email != body.email
    if body.email is not None and changed and not operator:
        # The new address identifies the member once the link sent to it is used.
        call.state.extension(DeviceSessions).request_link_later(body.email, links_base(call))
    return json_response(member, status_code=201 if replaced is None else 200)


class MemberChange(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    guest_fields: GuestFields
    """What the vendor reads of the guest list: ``nothing``, ``counts`` (the headcount,
    meal and dietary totals), ``names`` (the guest list without meals and dietary needs)
    or ``names_meals`` (with them)."""


@people_routes.patch(
    f"{_BASE}/members/{{sub}}",
    "changeMember",
    "Change what a vendor member reads of the guest list (admin key, or members.manage)",
    description="`guest_fields` is a vendor's only (422 for another role's). A change "
    "revokes the member's older tokens (their sockets close with 4401; a device session "
    "mints the next ones with the new choice) and records `member.guest_fields_changed`.",
    family="threads",
    accepts=frozenset({"jwt", "admin"}),
    errors=(*_ERR, 413, 422),
)
async def change_member(call: ApiCall, path: MemberPath, body: MemberChange) -> Response:
    wedding = path.wedding_id
    principal = await _manager(call, wedding)
    actor = ("admin", "admin") if principal is None else (principal.user_id, principal.role)
    people = call.state.extension(People)
    current = await people.member(wedding, path.sub)
    if current is None:
        raise NotFound("no such member", field="sub")
    if current.role != "vendor":
        raise Impossible(
            "only a vendor's reading of the guest list is chosen", field="guest_fields"
        )

    def event(before: Member) -> NewEvent:
        changed: dict[str, object] = {
            "sub": path.sub,
            "from": before.guest_fields,
            "to": body.guest_fields,
        }
        return member_event(
            wedding,
            "guest_fields_changed",
            changed,
            sub=actor[0],
            role=actor[1],
        )

    found = await people.set_guest_fields(wedding, path.sub, body.guest_fields, event)
    if found is None:
        raise NotFound("no such member", field="sub")
    before, after = found
    if before.guest_fields != after.guest_fields:
        # What they read is carried by their tokens: the older ones stop (and their sockets
        # close); their device session mints the next ones with the new choice.
        await _revoke(call, path.sub, wedding)
    return json_response(member_json(after, with_email=True))


@people_routes.delete(
    f"{_BASE}/members/{{sub}}",
    "eraseMember",
    "Per-person erasure: their tokens for the wedding are refused and their sockets closed;"
    " their messages become placeholders; their entry, reactions,"
    " notifications and thread events go, and their person with their devices, codes and"
    " claims when this was their last wedding (admin key)",
    family="admin",
    security="admin",
    status=204,
    errors=(401, 403, 404, 429, 503),
)
async def erase_member(call: ApiCall, path: MemberPath) -> Response:
    # The admin key only (the route's credential kinds). Their tokens for the wedding are
    # refused first, as removing them does (a token minted before the erasure would read
    # on, and register them again); then every feature forgets them (this one their
    # entry, threads their messages, notifications their inbox) and the store's files are
    # scrubbed.
    wedding, sub = path.wedding_id, path.sub
    listed = await call.state.extension(People).member(wedding, sub) is not None
    if listed:
        await _revoke(call, sub, wedding)
    known = await call.state.erasures.erase_member(wedding, sub)
    if not (listed or known):
        raise NotFound("no such member", field="sub")
    if not listed:
        await _revoke(call, sub, wedding)  # known only to another feature (their messages)
    return Response(status_code=204)


async def _manager(call: ApiCall, wedding: str) -> Principal | None:
    """Who manages the wedding's members in this call: ``None`` for the admin key, else a
    member whose role has ``members.manage``."""
    if is_admin(call):
        return None
    principal = await member_principal(call, wedding)
    if not call.state.permissions.can(principal.role, "members.manage"):
        raise Forbidden(f"the {principal.role} role does not have 'members.manage'")
    return principal


async def _check_ceiling(
    call: ApiCall, people: People, principal: Principal, path: PutMemberPath, body: MemberBody
) -> None:
    """Refuse a member's change that passes the ceiling (the invitations feature): what
    CRDT_SERVER_PERMISSIONS cannot widen."""
    members = await people.members(path.wedding_id)
    current = next((m for m in members if m.sub == path.sub), None)
    claims = call.caller.claims
    refused = member_edit_refusal(
        call.state.permissions,
        principal.role,
        dict(claims.docs) if claims is not None else {},
        editor_sub=principal.user_id,
        sub=path.sub,
        current_role=None if current is None else current.role,
        current_email=None if current is None else current.email,
        role=body.role,
        email=body.email,
        email_held_by_another=body.email is not None
        and any(m.email == body.email and m.sub != path.sub for m in members),
    )
    if refused is not None:
        raise Forbidden(refused[0], field=refused[1])


async def _revoke(call: ApiCall, sub: str, wedding: str) -> None:
    """Refuse ``sub``'s tokens for ``wedding`` and close their sockets; what they set up is
    the erasure's to end (each feature's erase hook says why: erased, not revoked)."""
    try:
        await call.state.erasures.revoke(sub, wedding, cascade=False)
    except StoreError as exc:
        raise Unavailable("the store could not record the revocation, retry") from exc


@people_routes.post(
    f"{_BASE}/members/{{sub}}/unsubscribe",
    "unsubscribeOneClick",
    "One-click unsubscribe (RFC 8058)",
    family="read",
    security="none",
    media_type="text/html",
    errors=(404, 429),
)
@people_routes.get(
    f"{_BASE}/members/{{sub}}/unsubscribe",
    "unsubscribe",
    "Stop notification emails (the link in every email)",
    family="read",
    security="none",
    media_type="text/html",
    errors=(404, 429),
)
async def unsubscribe(call: ApiCall, path: MemberPath, query: UnsubscribeQuery) -> Response:
    people = call.state.extension(People)
    if not query.key or not await people.unsubscribe(path.wedding_id, path.sub, query.key):
        raise NotFound("unknown unsubscribe link", field="key")
    return HTMLResponse(
        "<!doctype html><title>Unsubscribed</title><p>You will get no more notification"
        " emails for this wedding.</p>"
    )
