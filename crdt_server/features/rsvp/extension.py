"""The RSVP links' extension: installs the tables, keeps the links' secret and the
per-link and per-address rate limits of the guests' routes."""

from __future__ import annotations

from crdt_server.core.hooks import Core, Extension
from crdt_server.core.limits import RateLimiter

from .settings import RsvpSettings
from .tables import RsvpTables

__all__ = ["RsvpLinks"]


class RsvpLinks(Extension):
    name = "rsvp"

    def __init__(self) -> None:
        self._tables: RsvpTables | None = None
        self._secret: bytes | None = None
        self.per_link = RateLimiter(1.0, 1.0)
        """Requests per RSVP link (``rsvp_per_link_per_hour``): the tight one."""
        self.per_address = RateLimiter(1.0, 1.0)
        """Requests to RSVP links per client address (``rsvp_per_address_per_hour``)."""
        self.per_link_rate = self.per_address_rate = 1.0
        """The two limits, per hour."""

    async def start(self, core: Core) -> None:
        settings = core.settings.fragment(RsvpSettings)
        link, address = settings.rsvp_per_link_per_hour, settings.rsvp_per_address_per_hour
        self.per_link_rate, self.per_address_rate = float(link), float(address)
        self.per_link = RateLimiter(link / 3600.0, float(link))
        self.per_address = RateLimiter(address / 3600.0, float(address))
        self._tables = RsvpTables(core.store)
        await self._tables.install()
        self._secret = await self._tables.secret()

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        await self.tables.forget_guest(wedding, guest_id)

    @property
    def tables(self) -> RsvpTables:
        if self._tables is None:
            raise RuntimeError("the RSVP extension has not been started")
        return self._tables

    @property
    def secret(self) -> bytes:
        """The key of every link's HMAC (the store's, the same on every host)."""
        if self._secret is None:
            raise RuntimeError("the RSVP extension has not been started")
        return self._secret
