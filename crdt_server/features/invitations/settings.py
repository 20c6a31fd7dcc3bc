"""The invitations feature's settings."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["InvitationSettings"]


@dataclass(frozen=True, slots=True)
class InvitationSettings:
    invitation_attempts_per_minute: int = 10
    """Invitation codes one client address may try a minute
    (``POST /api/invitations/accept``), in each server process; a code is 256 bits, so
    this only keeps guessing and scripted reuse loud and slow."""
    open_invitations_per_wedding: int = 200
    """The most invitations one wedding may have open (not revoked, expired or used up)."""

    def __post_init__(self) -> None:
        require_positive(self, "invitation_attempts_per_minute", "open_invitations_per_wedding")
