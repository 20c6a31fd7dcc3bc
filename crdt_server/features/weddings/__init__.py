"""Weddings the server creates: ``POST /api/weddings`` (the admin key, or anyone with
``CRDT_SERVER_OPEN_SIGNUP``) and ``crdt-server wedding create`` make one with its profile
and the couple's member; ``GET``/``PUT .../settings`` read and change the profile (the
timeline's ``profile`` map) and the budget's currency. Open signup's limits, and what may
go out on a wedding's behalf (:meth:`Weddings.take_invitation_email`), live here."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.edge.export import EXPORT
from crdt_server.edge.routing import ApiRoute
from crdt_server.features import Built, Feature
from crdt_server.features.invitations import Invitations
from crdt_server.features.people import People
from crdt_server.features.signin import DeviceSessions
from crdt_server.features.weddings.commands import COMMANDS
from crdt_server.features.weddings.extension import (
    INVITATION,
    Weddings,
    queue_first_sign_in_link,
)
from crdt_server.features.weddings.settings import WeddingSettings
from crdt_server.features.weddings.tables import SCHEMA

__all__ = [
    "FEATURE",
    "INVITATION",
    "WeddingSettings",
    "Weddings",
    "queue_first_sign_in_link",
]


def _build(built: Built) -> Sequence[Extension]:
    built.get(People)  # the couple's member goes into its directory
    weddings = Weddings(built.settings.fragment(WeddingSettings), built.core.store)
    invitations = built.find(Invitations)
    if invitations is not None:
        invitations.sender = weddings  # invitation emails: counted, after verification
    sessions = built.find(DeviceSessions)
    if sessions is not None:
        sessions.verified_listeners.append(weddings.address_verified)
        sessions.forgotten_listeners.append(weddings.address_forgotten)
    return [weddings]


def _routes() -> Sequence[ApiRoute]:
    from crdt_server.features.weddings.routes import wedding_routes

    return wedding_routes()


FEATURE = Feature(
    "weddings",
    _build,
    needs=("people",),
    routes=_routes,
    schemas=(SCHEMA,),
    settings=WeddingSettings,
    commands=COMMANDS,
    capabilities={
        # Who may change a wedding's profile and currency.
        "weddings.settings": LEADS,
        # Who may export the whole wedding (GET .../export, checked in
        # crdt_server/edge/export.py): the couple, whose data it is (GDPR art. 15/20).
        EXPORT: frozenset({"couple"}),
    },
)
