"""The couple's and planner's RSVP link routes (capability ``rsvp.links``).

- ``POST /api/weddings/{id}/households/{household_id}/rsvp-link`` -> ``{"url", "code"}``:
  the household's link, derived (nothing is stored; the same link until it is revoked).
  No GET makes a secret.
- ``DELETE`` the same path: revokes it, raising the household's link version (every code
  made before stops working, whatever the guests document holds).
- ``POST``/``DELETE /api/weddings/{id}/guests/{guest_id}/rsvp-link``: the same for a guest
  in no household, a link keyed by the guest (nothing is written to the guest list: no
  household entry is made for them); 422 for a guest who is in a household (theirs is the
  household's link).
- ``GET /api/weddings/{id}/rsvp-links.csv``: one row per household and per guest in none
  (never cached; an ``rsvp.links_exported`` event records who took it).
- ``GET /api/weddings/{id}/rsvp-links.html``: the same links as a printable sheet, an SVG
  QR code per household, for paper invitations (never cached, recorded likewise).
"""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Annotated

import msgspec
from msgspec import Meta
from starlette.responses import Response

from crdt_server.edge.guards import capable_principal
from crdt_server.edge.links import (
    PublicUrlMissing,
    missing_public_url,
    outbound_url,
    public_url,
)
from crdt_server.edge.params import WeddingId, WeddingPath
from crdt_server.edge.routing import ApiCall, Routes, json_response
from crdt_server.errors import Impossible, NotFound
from crdt_server.features.events import EventLog
from crdt_server.storage import NewEvent

from .domain import link_key, mint_code, mint_guest_code
from .domain_households import HouseholdView, Wedding, read_wedding
from .extension import RsvpLinks
from .settings import RsvpSettings

__all__ = [
    "CAPABILITY",
    "EXPORTED",
    "GuestPath",
    "HouseholdPath",
    "guest_of",
    "household_of",
    "link_routes",
    "rsvp_url",
    "wedding_of",
]

CAPABILITY = "rsvp.links"
EXPORTED = "rsvp.links_exported"
CSV = "text/csv; charset=utf-8"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")

HouseholdId = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$", description="a household's id")]


class HouseholdPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    household_id: HouseholdId


GuestId = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$", description="a guest id")]


class GuestPath(msgspec.Struct, frozen=True):
    wedding_id: WeddingId
    guest_id: GuestId


class RsvpLink(msgspec.Struct, frozen=True):
    url: str
    """The RSVP page with the code in its fragment (never sent to a server by browsers)."""
    code: str
    public_url_missing: PublicUrlMissing = msgspec.UNSET
    """``url`` came from this request's host: the server has no public URL."""


class LinkRevoked(msgspec.Struct, frozen=True):
    household_id: str
    """The household's id; for a guest's own link, the guest's (as ``guest_id``)."""
    revoked: bool
    version: int
    """The link's version now: every link made before is refused."""
    guest_id: str | msgspec.UnsetType = msgspec.UNSET
    """A guest's own link was revoked: the guest."""


link_routes = Routes()
_LINK = "/api/weddings/{wedding_id}/households/{household_id}/rsvp-link"
_AUTH = (401, 403, 404, 429)


def rsvp_url(call: ApiCall, code: str, *, outbound: bool = False) -> str:
    """The RSVP page's address for ``code``: on ``CRDT_SERVER_RSVP_URL`` when set (a host
    of its own), else on the server's public URL: for the caller, else their request's
    host; ``outbound`` (a link that leaves them: an email), else the socket the server
    listens on, never the request's ``Host`` (:mod:`crdt_server.edge.links`)."""
    settings = call.state.settings
    base = settings.fragment(RsvpSettings).rsvp_url
    page = f"/rsvp/#code={code}"
    if base:
        return base.rstrip("/") + page
    if outbound:
        return outbound_url(call.request, settings, page)
    return public_url(call.request, settings, page)


async def wedding_of(call: ApiCall, wedding_id: str) -> Wedding:
    """The wedding's profile and households, as they are now."""
    docs = await call.state.weddings.documents(wedding_id, kinds=("guests", "timeline"))
    return read_wedding(docs)


def household_of(wedding: Wedding, household_id: str) -> HouseholdView:
    """One household of the wedding (404 naming ``household_id`` if there is none)."""
    household = wedding.households.get(household_id)
    if household is None:
        raise NotFound("no such household", field="household_id")
    return household


def guest_of(wedding: Wedding, guest_id: str) -> HouseholdView:
    """A guest in no household, as the one-person household their own link answers for
    (404 naming ``guest_id`` for no such guest, 422 for a guest who is in a household)."""
    solo = wedding.solo.get(guest_id)
    if solo is not None:
        return solo
    for household in wedding.households.values():
        if any(g.id == guest_id for g in household.guests):
            raise Impossible(
                f"in the household {household.name!r}: its link answers for them",
                field="guest_id",
            )
    for alone in wedding.solo.values():
        if any(g.id == guest_id for g in alone.guests):
            raise Impossible(
                f"the plus-one of {alone.name!r}: their host's link answers for them",
                field="guest_id",
            )
    raise NotFound("no such guest", field="guest_id")


@link_routes.post(
    _LINK,
    "mintRsvpLink",
    "The household's RSVP link (derived: the same until revoked; nothing is stored)",
    family="write",
    response_model=RsvpLink,
    errors=(400, *_AUTH),
)
async def mint_link(call: ApiCall, path: HouseholdPath) -> Response:
    capable_principal(call, path.wedding_id, CAPABILITY)
    household_of(await wedding_of(call, path.wedding_id), path.household_id)
    links = call.state.extension(RsvpLinks)
    version = await links.tables.version(path.wedding_id, path.household_id)
    code = mint_code(links.secret, path.wedding_id, path.household_id, version)
    return _link_answer(call, code)


def _link_answer(call: ApiCall, code: str) -> Response:
    """A minted link as the caller is answered: its URL, its code, whether the URL is only
    the listening socket's (no public URL set)."""
    missing = missing_public_url(call.state.settings)
    return json_response(RsvpLink(rsvp_url(call, code), code, public_url_missing=missing))


@link_routes.delete(
    _LINK,
    "revokeRsvpLink",
    "Revoke the household's RSVP link: every link made before stops working",
    family="write",
    response_model=LinkRevoked,
    errors=(400, *_AUTH),
)
async def revoke_link(call: ApiCall, path: HouseholdPath) -> Response:
    principal = capable_principal(call, path.wedding_id, CAPABILITY)
    # A household no longer in the guest list may still have a link out there: revoking
    # it is allowed (the version is raised all the same).
    tables = call.state.extension(RsvpLinks).tables
    version = await tables.revoke(path.wedding_id, path.household_id, principal.user_id)
    return json_response(LinkRevoked(path.household_id, True, version))


_GUEST_LINK = "/api/weddings/{wedding_id}/guests/{guest_id}/rsvp-link"


@link_routes.post(
    _GUEST_LINK,
    "mintGuestRsvpLink",
    "The RSVP link of a guest in no household, keyed by the guest (derived: the same until "
    "revoked; nothing is stored, no household entry is made)",
    family="write",
    response_model=RsvpLink,
    errors=(400, *_AUTH, 422),
)
async def mint_guest_link(call: ApiCall, path: GuestPath) -> Response:
    capable_principal(call, path.wedding_id, CAPABILITY)
    guest_of(await wedding_of(call, path.wedding_id), path.guest_id)
    links = call.state.extension(RsvpLinks)
    version = await links.tables.version(path.wedding_id, link_key(path.guest_id, guest=True))
    code = mint_guest_code(links.secret, path.wedding_id, path.guest_id, version)
    return _link_answer(call, code)


@link_routes.delete(
    _GUEST_LINK,
    "revokeGuestRsvpLink",
    "Revoke a guest's own RSVP link: every link made for them before stops working",
    family="write",
    response_model=LinkRevoked,
    errors=(400, *_AUTH),
)
async def revoke_guest_link(call: ApiCall, path: GuestPath) -> Response:
    principal = capable_principal(call, path.wedding_id, CAPABILITY)
    # Like a household's: a guest no longer on the list (or now in a household) may still
    # have a link out there, and revoking it is allowed.
    tables = call.state.extension(RsvpLinks).tables
    key = link_key(path.guest_id, guest=True)
    version = await tables.revoke(path.wedding_id, key, principal.user_id)
    return json_response(LinkRevoked(path.guest_id, True, version, guest_id=path.guest_id))


def _safe(cell: str) -> str:
    """A cell a spreadsheet would run as a formula, prefixed with ``'`` (OWASP)."""
    return "'" + cell if cell.lstrip("'").startswith(_FORMULA) else cell


class _Made(msgspec.Struct, frozen=True):
    """One link of the CSV or the sheet."""

    household: HouseholdView
    """The household; for a guest's own link, the guest as one (their id, their name)."""
    code: str
    url: str
    guest: bool


async def _links(call: ApiCall, wedding_id: str) -> list[_Made]:
    """Every link: the households' with anyone in them (by name), then the own links of
    the guests in no household (by name)."""
    wedding = await wedding_of(call, wedding_id)
    links = call.state.extension(RsvpLinks)
    versions = await links.tables.versions(wedding_id)
    found: list[_Made] = []
    for household in sorted(wedding.households.values(), key=lambda h: (h.name.casefold(), h.id)):
        if not household.guests:
            continue  # an entry nobody is in: its link would open nothing
        code = mint_code(links.secret, wedding_id, household.id, versions.get(household.id, 0))
        found.append(_Made(household, code, rsvp_url(call, code), guest=False))
    for alone in sorted(wedding.solo.values(), key=lambda h: (h.name.casefold(), h.id)):
        version = versions.get(link_key(alone.id, guest=True), 0)
        code = mint_guest_code(links.secret, wedding_id, alone.id, version)
        found.append(_Made(alone, code, rsvp_url(call, code), guest=True))
    return found


async def _record_export(call: ApiCall, wedding_id: str, sub: str, role: str, form: str) -> None:
    log = call.state.find(EventLog)
    if log is None:
        return  # a server without the events feature keeps no record of anything
    data = json.dumps({"format": form, "by": sub})
    await log.record([NewEvent(wedding_id, EXPORTED, data, "guests", sub, role)])


@link_routes.get(
    "/api/weddings/{wedding_id}/rsvp-links.csv",
    "exportRsvpLinksCsv",
    "Every household's RSVP link, and each guest's in no household, as CSV (never cached; "
    "the export is recorded as an event)",
    family="read",
    media_type="text/csv",
    errors=(400, *_AUTH, 503),
)
async def links_csv(call: ApiCall, path: WeddingPath) -> Response:
    principal = capable_principal(call, path.wedding_id, CAPABILITY)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("household_id", "household", "people", "url", "code", "guest_id"))
    for made in await _links(call, path.wedding_id):
        each = made.household
        people = _safe("; ".join(g.name for g in each.guests))
        if made.guest:  # a guest in no household: their own link, no household
            writer.writerow(("", "", people, made.url, made.code, each.id))
        else:
            writer.writerow((each.id, _safe(each.name), people, made.url, made.code, ""))
    await _record_export(call, path.wedding_id, principal.user_id, principal.role, "csv")
    headers = {
        "Content-Disposition": f'attachment; filename="{path.wedding_id}-rsvp-links.csv"',
        "Cache-Control": "no-store",
    }
    return Response(out.getvalue().encode(), media_type=CSV, headers=headers)


_SHEET_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:1cm}"
    ".card{display:inline-block;width:6cm;margin:0 .4cm .6cm 0;vertical-align:top;"
    "break-inside:avoid}.card svg{width:4cm;height:4cm}.url{font-size:9px;word-break:break-all}"
)


@link_routes.get(
    "/api/weddings/{wedding_id}/rsvp-links.html",
    "printRsvpLinks",
    "Every household's RSVP link, and each guest's in no household, on a printable sheet, "
    "an SVG QR code each (never cached; recorded as an event)",
    family="read",
    media_type="text/html",
    errors=(400, *_AUTH, 503),
)
async def links_sheet(call: ApiCall, path: WeddingPath) -> Response:
    import segno  # imported by the first sheet, not by every process start

    principal = capable_principal(call, path.wedding_id, CAPABILITY)
    cards: list[str] = []
    for made in await _links(call, path.wedding_id):
        qr = segno.make(made.url, error="m", micro=False)
        svg = qr.svg_inline(scale=4, border=2, title=None)
        cards.append(
            f'<div class="card">{svg}<p><strong>{html.escape(made.household.name)}</strong></p>'
            f'<p class="url">{html.escape(made.url)}</p></div>'
        )
    await _record_export(call, path.wedding_id, principal.user_id, principal.role, "sheet")
    page = (
        '<!doctype html><html lang="en"><meta charset="utf-8"><title>RSVP links</title>'
        f"<style>{_SHEET_STYLE}</style><body><h1>RSVP links</h1>{''.join(cards)}</body></html>"
    )
    headers = {
        "Cache-Control": "no-store",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    }
    return Response(page.encode(), media_type="text/html; charset=utf-8", headers=headers)
