"""Invitations: a member who runs the wedding invites people by link (never above their
own access), and whoever opens the link joins the wedding as a member; ``member.invited``
and ``member.joined`` events say who and when.

For other features: :class:`Invitations` (its :attr:`~Invitations.post`, where invitation
emails go, is set by the notifications feature; its :attr:`~Invitations.sender`, which
caps them per wedding, by the weddings feature); :func:`member_event` makes every
``member.*`` event; :func:`grant_refusal`, :func:`member_edit_refusal` and
:func:`granter` are the ceiling a member's grants and edits of other members keep to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.invitations.domain import grant_refusal, member_edit_refusal
from crdt_server.features.invitations.extension import (
    InvitationMail,
    Invitations,
    InvitationSender,
    member_event,
)
from crdt_server.features.invitations.routes import (
    granter,
    invitation_routes,
    start_device_session,
)
from crdt_server.features.invitations.settings import InvitationSettings
from crdt_server.features.invitations.tables import INVITATIONS_SCHEMA

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute

__all__ = [
    "FEATURE",
    "INVITATIONS_SCHEMA",
    "InvitationMail",
    "InvitationSender",
    "InvitationSettings",
    "Invitations",
    "grant_refusal",
    "granter",
    "member_edit_refusal",
    "member_event",
    "start_device_session",
]


def _build(built: Built) -> Sequence[Extension]:
    return [Invitations(built.core, built.find(EventLog))]


def _routes() -> Sequence[ApiRoute]:
    return [*invitation_routes()]


FEATURE = Feature(
    "invitations",
    _build,
    routes=_routes,
    schemas=(INVITATIONS_SCHEMA,),
    settings=InvitationSettings,
    capabilities={
        # Inviting people by link (never above the inviter: the feature's domain).
        "members.invite": LEADS,
    },
)
