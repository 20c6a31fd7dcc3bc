"""A household's RSVP link by email, through the notifications feature's outbox, and the
unsubscribe link every such email carries.

- ``POST /api/weddings/{id}/households/{household_id}/rsvp-link/email`` (capability
  ``rsvp.links``) answers 202 with the guests emailed and those skipped (no email
  address in their ``contact``, or unsubscribed). ``From`` shows the couple's names before
  ``CRDT_SERVER_EMAIL_FROM``; 422 when this server sends no email. The email's links (the
  RSVP page, unsubscribing) leave the requester: they are built from
  ``CRDT_SERVER_PUBLIC_URL`` (or ``CRDT_SERVER_RSVP_URL`` for the page), else the socket
  the server listens on, never the request's ``Host`` (:mod:`crdt_server.edge.links`).
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
from crdt_server.edge.params import WeddingId
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, NotFound
from crdt_server.features.notifications import Notifications

from .domain import email_address, link_subject, mint_code, unsubscribe_key
from .extension import RsvpLinks
from .routes import CAPABILITY, HouseholdPath, household_of, rsvp_url, wedding_of

__all__ = ["mail_routes"]

mail_routes = Routes()


class Skipped(msgspec.Struct, frozen=True):
    guest_id: str
    reason: Literal["no email address", "unsubscribed"]


class Emailed(msgspec.Struct, frozen=True):
    queued: list[str]
    """The guests an email to was queued for (sent at once, with retries)."""
    skipped: list[Skipped]


class GuestPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    guest_id: Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$", description="a guest id")]


class UnsubscribeQuery(msgspec.Struct, frozen=True):
    key: Annotated[str, Meta(max_length=64, description="the key of the email's link")] = ""


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
    outbox = call.state.find(Notifications)
    if outbox is None or not outbox.emails:
        raise Impossible("this server sends no email (CRDT_SERVER_SMTP_URL)", field="household_id")
    wedding = await wedding_of(call, path.wedding_id)
    household = household_of(wedding, path.household_id)
    links = call.state.extension(RsvpLinks)
    version = await links.tables.version(path.wedding_id, household.id)
    code = mint_code(links.secret, path.wedding_id, household.id, version)
    url = rsvp_url(call, code, outbound=True)
    couple = " & ".join(wedding.names) or "The couple"
    deadline = household.rsvp_deadline or wedding.deadline
    body = (
        f"Dear {household.name},\n\n{couple} would love to know whether you can come"
        + (f" on {wedding.date}" if wedding.date else "")
        + (f" at {wedding.venue}" if wedding.venue else "")
        + f".\n\nPlease answer for your household here:\n{url}\n"
        + (f"\nPlease answer by {deadline}.\n" if deadline else "")
    )
    blocked = await links.tables.unsubscribed(path.wedding_id)
    queued: list[str] = []
    skipped: list[Skipped] = []
    for guest in household.guests:
        address = email_address(guest.contact)
        if address is None:
            skipped.append(Skipped(guest.id, "no email address"))
            continue
        if guest.id in blocked:
            skipped.append(Skipped(guest.id, "unsubscribed"))
            continue
        key = unsubscribe_key(links.secret, path.wedding_id, guest.id)
        unsubscribe = outbound_url(
            call.request,
            call.state.settings,
            f"/api/weddings/{path.wedding_id}/guests/{guest.id}/rsvp-unsubscribe?key={key}",
        )
        await outbox.queue_guest_email(
            path.wedding_id,
            guest.id,
            address,
            from_name=couple,
            subject=link_subject(couple),
            body=body,
            unsubscribe=unsubscribe,
        )
        queued.append(guest.id)
    return json_response(Emailed(queued, skipped), status_code=202)


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
