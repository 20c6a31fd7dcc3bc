"""The text messages' settings: the Kannel gateway, the sender, the allowed countries, the
daily caps and the inbound secret (``CRDT_SERVER_SMS_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from crdt_server.settings import SettingsError, require_positive

__all__ = ["SmsSettings"]


@dataclass(frozen=True, slots=True)
class SmsSettings:
    sms_url: str = ""
    """Kannel's ``sendsms`` URL, with its user and password
    (``http://user:pass@127.0.0.1:13013/cgi-bin/sendsms``, or ``?username=..&password=..``
    in its query). Empty: no text is ever sent (texts cost money), and no number can be
    added."""
    sms_from: str = ""
    """The sender the texts carry (Kannel's ``from``: a number or an alphanumeric sender
    id the operator's SMSC allows); empty: the SMSC's default."""
    sms_countries: str = ""
    """The calling codes numbers may have, comma separated (``44,33,1``): a number of any
    other country is refused (SMS pumping). Required when ``sms_url`` is set."""
    sms_per_wedding_per_day: int = 200
    """Texts (verification codes included) one wedding may send a UTC day; more are
    refused (429 naming this limit) or dropped and counted."""
    sms_per_server_per_day: int = 2000
    """Texts the whole server may send a UTC day (every wedding together)."""
    sms_codes_per_hour: int = 5
    """Verification codes one member may be sent an hour (more: 429)."""
    sms_per_address_per_hour: int = 20
    """Phone requests one client address may make an hour (more: 429)."""
    sms_inbound_secret: str = ""
    """The secret in the path of ``POST /api/sms/inbound/{secret}`` (Kannel's
    ``sms-service`` ``post-url``); empty: inbound texts are refused (404). At least 16
    characters; it is removed from the server's access log."""
    sms_retry_schedule: str = "0,10,60,300,1800"
    """Seconds before each attempt to hand a text to Kannel, comma separated; after the
    last fails, the text is marked failed."""
    sms_timeout_seconds: float = 10.0
    """A ``sendsms`` request with no answer within this fails (and is retried)."""

    def __post_init__(self) -> None:
        require_positive(
            self,
            "sms_per_wedding_per_day",
            "sms_per_server_per_day",
            "sms_codes_per_hour",
            "sms_per_address_per_hour",
            "sms_timeout_seconds",
        )
        if self.sms_url:
            parts = urlsplit(self.sms_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError("sms_url must be an http(s) URL of Kannel's sendsms")
            if not self.countries:
                raise SettingsError("sms_countries must list the calling codes numbers may have")
        _ = self.countries
        _ = self.sms_retries
        if self.sms_inbound_secret and (
            len(self.sms_inbound_secret) < 16
            or not all(c.isalnum() or c in "-_" for c in self.sms_inbound_secret)
        ):
            raise SettingsError("sms_inbound_secret: at least 16 letters, digits, - or _")
        if len(self.sms_from) > 20 or any(not c.isprintable() for c in self.sms_from):
            raise SettingsError("sms_from: at most 20 printable characters")

    @property
    def countries(self) -> tuple[str, ...]:
        """The allowed calling codes."""
        codes = tuple(c.strip().lstrip("+") for c in self.sms_countries.split(",") if c.strip())
        if any(not c.isdigit() or not 1 <= len(c) <= 3 or c[0] == "0" for c in codes):
            raise SettingsError("sms_countries: calling codes of 1 to 3 digits, comma separated")
        return codes

    @property
    def sms_retries(self) -> tuple[float, ...]:
        """The delay before each attempt, in seconds."""
        try:
            delays = tuple(float(d) for d in self.sms_retry_schedule.split(","))
        except ValueError as exc:
            raise SettingsError("sms_retry_schedule must be comma-separated seconds") from exc
        if not delays or any(not 0 <= d <= 86400 for d in delays):
            raise SettingsError("sms_retry_schedule: each delay 0 to 86400 seconds")
        return delays
