"""A household's RSVP link by email, through the notifications feature's outbox, and the
unsubscribe link every such email carries.

- ``POST /api/weddings/{id}/households/{household_id}/rsvp-link/email`` (capability
  ``rsvp.links``) answers 202 with the guests emailed and those skipped (no email
  address in their ``contact``, or unsubscribed). ``From`` shows the couple's names before
  ``CRDT_SERVER_EMAIL_FROM``; 422 when this server sends no email. The email's links (the
  RSVP page, unsubscribing) leave the requester: they are built from
  ``CRDT_SERVER_PUBLIC_URL`` (or ``CRDT_SERVER_RSVP_URL`` for the page), else the socket
  the server listens on, never the request's ``Host`` (:mod:`crdt_server.edge.links`).
- ``POST /api/weddings/{id}/guests/{guest_id}/rsvp-link/email``: the same for a guest in
  no household, their own link.
- ``POST /api/weddings/{id}/rsvp-links/email``: every household's link and every own
  link of a guest in none, in one request (202: who was emailed, who skipped).
- ``GET``/``POST /api/weddings/{id}/guests/{guest_id}/rsvp-unsubscribe?key=...``: the
  guest gets no more RSVP emails (one click, RFC 8058); the key is an HMAC of the wedding
  and the guest with the RSVP secret, so nothing is stored until it is used.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

import msgspec
from msgspec import Meta
from starlette.responses import HTMLResponse, Response

from crdt_server.edge.guards import capable_principal
from crdt_server.edge.links import outbound_url
from crdt_server.edge.params import WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, NotFound
from crdt_server.features.notifications import Notifications

from .domain import (
    email_address,
    link_key,
    link_subject,
    mint_code,
    mint_guest_code,
    unsubscribe_key,
)
from .domain_households import HouseholdView, Wedding
from .extension import RsvpLinks
from .routes import (
    CAPABILITY,
    GuestPath,
    HouseholdPath,
    guest_of,
    household_of,
    rsvp_url,
    wedding_of,
)

__all__ = ["mail_routes"]

mail_routes = Routes()


class Skipped(msgspec.Struct, frozen=True):
    guest_id: str
    reason: Literal["no email address", "unsubscribed"]


class Emailed(msgspec.Struct, frozen=True):
    queued: list[str]
    """The guests an email to was queued for (sent at once, with retries)."""
    skipped: list[Skipped]


class UnsubscribeQuery(msgspec.Struct, frozen=True):
    key: Annotated[str, Meta(max_length=64, description="the key of the email's link")] = ""


def _outbox(call: ApiCall, field: str) -> Notifications:
    """The notifications' outbox, or 422 naming ``field`` when this server sends no email."""
    outbox = call.state.find(Notifications)
    if outbox is None or not outbox.emails:
        raise Impossible("this server sends no email (CRDT_SERVER_SMTP_URL)", field=field)
    return outbox


async def _email(
    call: ApiCall,
    outbox: Notifications,
    wedding_id: str,
    wedding: Wedding,
    household: HouseholdView,
    *,
    guest: bool,
    blocked: set[str],
    into: Emailed,
) -> None:
    """Queue the link of ``household`` (a guest's own link when ``guest``) to each of its
    guests with an email address who did not unsubscribe; what was done goes ``into``."""
    links = call.state.extension(RsvpLinks)
    version = await links.tables.version(wedding_id, link_key(household.id, guest=guest))
    mint = mint_guest_code if guest else mint_code
    url = rsvp_url(call, mint(links.secret, wedding_id, household.id, version), outbound=True)
    couple = " & ".join(wedding.names) or "The couple"
    deadline = household.rsvp_deadline or wedding.deadline
    body = (
        f"Dear {household.name},\n\n{couple} would love to know whether you can come"
        + (f" on {wedding.date}" if wedding.date else "")
        + (f" at {wedding.venue}" if wedding.venue else "")
        + f".\n\nPlease answer {'here' if guest else 'for your household here'}:\n{url}\n"
        + (f"\nPlease answer by {deadline}.\n" if deadline else "")
    )
    for person in household.guests:
        address = email_address(person.contact)
        if address is None:
            into.skipped.append(Skipped(person.id, "no email address"))
            continue
        if person.id in blocked:
            into.skipped.append(Skipped(person.id, "unsubscribed"))
            continue
        key = unsubscribe_key(links.secret, wedding_id, person.id)
        unsubscribe = outbound_url(
            call.request,
            call.state.settings,
            f"/api/weddings/{wedding_id}/guests/{person.id}/rsvp-unsubscribe?key={key}",
        )
        await outbox.queue_guest_email(
            wedding_id,
            person.id,
            address,
            from_name=couple,
            subject=link_subject(couple),
            body=body,
            unsubscribe=unsubscribe,
        )
        into.queued.append(person.id)


async def _blocked(call: ApiCall, wedding_id: str) -> set[str]:
    return await call.state.extension(RsvpLinks).tables.unsubscribed(wedding_id)


@mail_routes.post(
    "/api/weddings/{wedding_id}/households/{household_id}/rsvp-link/email",
    "emailRsvpLink",
    "Email the household's RSVP link to each of its guests with an email address",
    family="write",
    response_model=Emailed,
    status=202,
    errors=(400, 401, 403, 404, 422, 429),
)
async def email_link(call: ApiCall, path: HouseholdPath) -> Response:
    capable_principal(call, path.wedding_id, CAPABILITY)
    outbox = _outbox(call, "household_id")
    wedding = await wedding_of(call, path.wedding_id)
    household = household_of(wedding, path.household_id)
    done = Emailed([], [])
    blocked = await _blocked(call, path.wedding_id)
    await _email(
        call, outbox, path.wedding_id, wedding, household, guest=False, blocked=blocked, into=done
    )
    return json_response(done, status_code=202)


@mail_routes.post(
    "/api/weddings/{wedding_id}/guests/{guest_id}/rsvp-link/email",
    "emailGuestRsvpLink",
    "Email a guest in no household their own RSVP link (and the plus-ones it answers for)",
    family="write",
    response_model=Emailed,
    status=202,
    errors=(400, 401, 403, 404, 422, 429),
)
async def email_guest_link(call: ApiCall, path: GuestPath) -> Response:
    capable_principal(call, path.wedding_id, CAPABILITY)
    outbox = _outbox(call, "guest_id")
    wedding = await wedding_of(call, path.wedding_id)
    alone = guest_of(wedding, path.guest_id)
    done = Emailed([], [])
    blocked = await _blocked(call, path.wedding_id)
    await _email(
        call, outbox, path.wedding_id, wedding, alone, guest=True, blocked=blocked, into=done
    )
    return json_response(done, status_code=202)


@mail_routes.post(
    "/api/weddings/{wedding_id}/rsvp-links/email",
    "emailAllRsvpLinks",
    "Email every household its RSVP link, and every guest in no household theirs",
    family="write",
    response_model=Emailed,
    status=202,
    errors=(400, 401, 403, 404, 422, 429),
    description=(
        "Each guest with an email address in `contact` who did not unsubscribe gets the "
        "link that answers for them: their household's, else their own. 202 lists the "
        "guests emailed (`queued`) and those skipped, with why."
    ),
)
async def email_all_links(call: ApiCall, path: WeddingPath) -> Response:
    capable_principal(call, path.wedding_id, CAPABILITY)
    outbox = _outbox(call, "wedding_id")
    wedding = await wedding_of(call, path.wedding_id)
    done = Emailed([], [])
    blocked = await _blocked(call, path.wedding_id)
    for household in wedding.households.values():
        await _email(
            call, outbox, path.wedding_id, wedding, household, guest=False, blocked=blocked,
            into=done,
        )  # fmt: skip
    for alone in wedding.solo.values():
        await _email(
            call, outbox, path.wedding_id, wedding, alone, guest=True, blocked=blocked, into=done
        )
    return json_response(done, status_code=202)


@mail_routes.post(
    "/api/weddings/{wedding_id}/guests/{guest_id}/rsvp-unsubscribe",
    "rsvpUnsubscribeOneClick",
    "One-click unsubscribe from RSVP emails (RFC 8058)",
    family="read",
    security="none",
    media_type="text/html",
    errors=(400, 404, 429),
)
@mail_routes.get(
    "/api/weddings/{wedding_id}/guests/{guest_id}/rsvp-unsubscribe",
    "rsvpUnsubscribe",
    "Stop RSVP emails to a guest (the link in every RSVP email)",
    family="read",
    security="none",
    media_type="text/html",
    errors=(400, 404, 429),
)
async def unsubscribe(call: ApiCall, path: GuestPath, query: UnsubscribeQuery) -> Response:
    links = call.state.extension(RsvpLinks)
    expected = unsubscribe_key(links.secret, path.wedding_id, path.guest_id)
    if not query.key or not hmac.compare_digest(expected.encode(), query.key.encode()):
        raise NotFound("unknown unsubscribe link", field="key")
    await links.tables.unsubscribe(path.wedding_id, path.guest_id)
    return HTMLResponse(
        "<!doctype html><title>Unsubscribed</title><p>You will get no more emails about"
        " this wedding's RSVP.</p>"
    )
