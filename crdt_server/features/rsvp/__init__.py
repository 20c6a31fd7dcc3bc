"""RSVP links: a household answers for itself from a personal link, with no account.

The couple and planner make (``POST``) and revoke (``DELETE``) a household's link, export
every link as CSV or a printable sheet of QR codes; guests read and answer through
``/api/rsvp/{code}`` as ``guest:<guest id>`` principals (:mod:`.routes_guest`), and the
page at ``/rsvp/`` is theirs (:mod:`crdt_server.edge.webapp` serves its bundle). A
household that has not answered is reminded by email before its deadline, once
(:mod:`.extension_reminders`, through the scheduler).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.notifications import Notifications
from crdt_server.features.scheduler import Scheduler

from .domain import mint_code, parse_code
from .extension import RsvpLinks
from .extension_reminders import REMINDER, RsvpReminders
from .routes import CAPABILITY, link_routes
from .routes_guest import GUEST_ROLE, guest_actor, guest_routes
from .routes_mail import mail_routes
from .routes_page import page_routes
from .settings import RsvpSettings
from .tables import RSVP_SCHEMA, RsvpTables

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute

__all__ = [
    "FEATURE",
    "GUEST_ROLE",
    "RSVP_SCHEMA",
    "RsvpLinks",
    "RsvpReminders",
    "RsvpSettings",
    "guest_actor",
    "mint_code",
    "parse_code",
]


async def _build(built: Built) -> Sequence[Extension]:
    tables = RsvpTables(built.core.store)
    links = RsvpLinks(built.settings.fragment(RsvpSettings), tables, await tables.secret())
    reminders = RsvpReminders(built.core, built.find(Scheduler), built.find(Notifications))
    return [links, reminders]


def _routes() -> Sequence[ApiRoute]:
    return [*link_routes(), *mail_routes(), *guest_routes(), *page_routes()]


FEATURE = Feature(
    "rsvp",
    _build,
    routes=_routes,
    schemas=(RSVP_SCHEMA,),
    settings=RsvpSettings,
    capabilities={CAPABILITY: LEADS},
    # rsvp.links_exported: who took the links (CSV or sheet); guest.rsvp_changed events
    # are the guests document's own.
    event_namespaces=("rsvp.",),
    # A household that has not answered is reminded before its deadline.
    jobs=(REMINDER,),
)
