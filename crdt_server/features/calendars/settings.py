"""The CalDAV calendars' settings (``CRDT_SERVER_CREDENTIALS_KEY``, ``CRDT_SERVER_CALDAV_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.features.calendars.domain import CredentialsError, KeyRing
from crdt_server.settings import SettingsError, require_positive

__all__ = ["CalendarSettings"]


@dataclass(frozen=True, slots=True)
class CalendarSettings:
    credentials_key: str = ""
    """The key the stored calendar passwords are encrypted with (AES-256-GCM): 32 random
    bytes in base64 (``openssl rand -base64 32``), or several comma-separated entries
    ``KID:KEY`` (a key id of 1 to 16 letters, digits, ``-`` or ``_``), the first of which
    encrypts and every one of which decrypts: put a new key first to rotate, and each
    password is re-encrypted under it when the server starts; drop the old key after
    that start. A key given without an id is named by
    the first 8 hex digits of its SHA-256. Empty: the calendar routes answer 503 and no
    calendar is synchronised."""
    caldav_allow_hosts: str = ""
    """Comma-separated host names or addresses (as a calendar URL spells them) that a
    CalDAV calendar may be on even though they resolve to a loopback, private or other
    non-public address (an on-premises Nextcloud, a test Radicale on ``127.0.0.1``). Every
    other calendar must resolve to public addresses only (the webhooks' SSRF guard)."""
    caldav_timeout_seconds: float = 15.0
    """A CalDAV request with no complete answer within this fails (the calendar shows the
    error, and it is tried again at the next poll)."""
    caldav_poll_seconds: float = 30.0
    """How often each calendar is read back for its vendors' changes (and tried again
    after an error); a timeline change is written out at once, whatever this says."""

    def __post_init__(self) -> None:
        require_positive(self, "caldav_timeout_seconds", "caldav_poll_seconds")
        if self.caldav_poll_seconds > 3600:
            raise SettingsError("caldav_poll_seconds: at most 3600")
        try:
            KeyRing.parse(self.credentials_key)
        except CredentialsError as exc:
            raise SettingsError(str(exc)) from None  # never the key itself

    @property
    def key_ring(self) -> KeyRing | None:
        """The credentials key ring (``None`` without the setting)."""
        return KeyRing.parse(self.credentials_key)

    @property
    def caldav_hosts(self) -> frozenset[str]:
        """The allowlist, each name lower-cased (``[::1]`` as ``::1``)."""
        names = (h.strip().lower().strip("[]") for h in self.caldav_allow_hosts.split(","))
        return frozenset(n for n in names if n)
