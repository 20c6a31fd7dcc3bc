"""Members leaving: one removed from a wedding by who runs it, and one person erased from
every wedding that knows them (the admin key).

A removal is the core's revocation (``erasures.revoke``): their tokens are refused, every
feature's ``on_revoke`` stops what they set up (webhook endpoints, calendar feeds, inbound
sources, their open invitations), their sockets close with 4401 in every process; then
their directory entry goes, with a ``member.removed`` event. What they wrote stays (an
erasure, ``DELETE .../members/{sub}``, is what makes it go).
"""

from __future__ import annotations

import msgspec
from starlette.responses import Response

from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Forbidden, NotFound, Unavailable
from crdt_server.features.invitations import Invitations, grant_refusal, granter, member_event
from crdt_server.features.people.extension import People
from crdt_server.features.people.routes import MemberPath, MemberSub
from crdt_server.storage import StoreError

__all__ = ["leaving_routes"]

leaving_routes = Routes()


class PersonPath(msgspec.Struct, frozen=True):
    sub: MemberSub


class Removed(msgspec.Struct, frozen=True):
    sub: str
    role: str
    closed: int
    """Sockets closed in this process (other processes close theirs on the bus)."""


class Erased(msgspec.Struct, frozen=True):
    sub: str
    weddings: list[str]


@leaving_routes.post(
    "/api/weddings/{wedding_id}/members/{sub}/remove",
    "removeMember",
    "Remove a member: their tokens, sockets and what they set up end (members.manage;"
    " never a member above you)",
    family="threads",
    response_model=Removed,
    errors=(401, 403, 404, 429, 503),
)
async def remove_member(call: ApiCall, path: MemberPath) -> Response:
    wedding, sub = path.wedding_id, path.sub
    principal, mine = granter(call, wedding, "members.manage")
    people = call.state.extension(People)
    member = await people.member(wedding, sub)
    if member is None:
        raise NotFound("no such member", field="sub")
    if sub != principal.user_id and grant_refusal(
        call.state.permissions, principal.role, mine, member.role
    ):
        raise Forbidden(f"you may not remove a member whose role is {member.role}", field="sub")
    try:
        _, closed = await call.state.erasures.revoke(sub, wedding)
    except StoreError as exc:
        raise Unavailable("the store could not record the revocation, retry") from exc
    event = member_event(
        wedding,
        "removed",
        {"sub": sub, "role": member.role},
        sub=principal.user_id,
        role=principal.role,
    )
    await people.remove(wedding, sub, event)
    people.forget(wedding, sub)
    return json_response(Removed(sub, member.role, closed))


@leaving_routes.delete(
    "/api/admin/members/{sub}",
    "erasePerson",
    "Erase a person from every wedding that knows them (admin key): their tokens are"
    " revoked everywhere, then each wedding erases them as DELETE .../members/{sub} does"
    " (their person, devices, codes and claims go with their last wedding)",
    family="admin",
    security="admin",
    response_model=Erased,
    errors=(401, 403, 404, 429, 503),
)
async def erase_person(call: ApiCall, path: PersonPath) -> Response:
    sub = path.sub
    weddings = await call.state.extension(Invitations).weddings_of(sub)
    if not weddings:
        raise NotFound("no wedding knows this person", field="sub")
    try:
        await call.state.erasures.revoke(sub, None)
    except StoreError as exc:
        raise Unavailable("the store could not record the revocation, retry") from exc
    for wedding in weddings:
        await call.state.erasures.erase_member(wedding, sub)
        call.state.extension(People).forget(wedding, sub)
    return json_response(Erased(sub, weddings))
