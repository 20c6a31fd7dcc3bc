"""A new wedding's settings: who may create one, and the limits on weddings made by
strangers (open signup)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_not_negative, require_positive

__all__ = ["WeddingSettings"]


@dataclass(frozen=True, slots=True)
class WeddingSettings:
    open_signup: bool = False
    """Whether anyone may create a wedding (``POST /api/weddings`` with no credential);
    off: the admin API key only (and ``crdt-server wedding create``)."""
    signups_per_address_per_hour: int = 3
    """Weddings one client address may create an hour with open signup (more: 429)."""
    signups_per_hour: int = 60
    """Weddings everyone together may create an hour with open signup, per process."""
    max_weddings_per_person: int = 3
    """Weddings one email address may be the creator of (open signup; the admin key is not
    limited). A deleted wedding no longer counts."""
    invitation_emails_per_day: int = 50
    """Invitation emails one wedding may send a day (UTC); 0: none."""

    def __post_init__(self) -> None:
        require_positive(
            self, "signups_per_address_per_hour", "signups_per_hour", "max_weddings_per_person"
        )
        require_not_negative(self, "invitation_emails_per_day")
