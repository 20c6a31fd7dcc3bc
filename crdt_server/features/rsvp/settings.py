"""The RSVP links' settings."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import SettingsError, require_positive

__all__ = ["RsvpSettings"]


@dataclass(frozen=True, slots=True)
class RsvpSettings:
    rsvp_url: str = ""
    """Where guests open their RSVP page (``https://rsvp.example.org``), when it is served
    from a host of its own: pages of one origin share their storage, so a separate host
    keeps the guests' page apart from the planners' app. Empty: ``/rsvp/`` on
    ``CRDT_SERVER_PUBLIC_URL`` (else, in an answer, the request's host; in an email, the
    address the server listens on)."""

    rsvp_per_link_per_hour: int = 60
    """Requests one RSVP link may make an hour (reads and answers together): a household
    answers a few times; a leaked link cannot be hammered."""

    rsvp_per_address_per_hour: int = 3000
    """Requests to RSVP links from one client address an hour, whatever the link: loose,
    so a venue's Wi-Fi or a carrier's NAT can serve many households at once, yet a guesser
    of codes is slowed down."""

    rsvp_reminder_days: int = 7
    """Days before a household's RSVP deadline (its own, else the wedding's) that a
    household nobody of which has answered yet gets one reminder email, through the
    scheduler and the guest-mail outbox (its guests with an email address who did not
    unsubscribe). Needs ``CRDT_SERVER_SMTP_URL`` and ``CRDT_SERVER_PUBLIC_URL`` (the
    email's links). 0: no reminders."""

    def __post_init__(self) -> None:
        if not 0 <= self.rsvp_reminder_days <= 365:
            raise SettingsError("CRDT_SERVER_RSVP_REMINDER_DAYS must be 0 to 365")
        require_positive(self, "rsvp_per_link_per_hour")
        require_positive(self, "rsvp_per_address_per_hour")
        if self.rsvp_url and not self.rsvp_url.startswith(("https://", "http://")):
            raise SettingsError("CRDT_SERVER_RSVP_URL must start with https:// or http://")
