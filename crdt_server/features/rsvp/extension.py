"""The RSVP links' extension: holds the tables, keeps the links' secret and the
per-link and per-address rate limits of the guests' routes."""

from __future__ import annotations

from crdt_server.core.hooks import Extension
from crdt_server.core.limits import RateLimiter

from .settings import RsvpSettings
from .tables import RsvpTables

__all__ = ["RsvpLinks"]


class RsvpLinks(Extension):
    name = "rsvp"

    def __init__(self, settings: RsvpSettings, tables: RsvpTables, secret: bytes) -> None:
        """``tables``: installed; ``secret``: theirs (:meth:`RsvpTables.secret`)."""
        self.tables = tables
        self.secret = secret
        """The key of every link's HMAC (the store's, the same on every host)."""
        link, address = settings.rsvp_per_link_per_hour, settings.rsvp_per_address_per_hour
        self.per_link_rate, self.per_address_rate = float(link), float(address)
        """The two limits, per hour."""
        self.per_link = RateLimiter(link / 3600.0, float(link))
        """Requests per RSVP link (``rsvp_per_link_per_hour``): the tight one."""
        self.per_address = RateLimiter(address / 3600.0, float(address))
        """Requests to RSVP links per client address (``rsvp_per_address_per_hour``)."""

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        await self.tables.forget_guest(wedding, guest_id)
