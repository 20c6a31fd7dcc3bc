"""The notification emails' settings (SMTP, sender, digest window)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import SettingsError, require_not_negative

__all__ = ["NotificationSettings"]


@dataclass(frozen=True, slots=True)
class NotificationSettings:
    smtp_url: str = ""
    """Where thread notification emails go (``smtp://user:pass@host:587`` with STARTTLS when
    offered, ``smtps://...:465`` for implicit TLS); empty: no email."""
    email_from: str = "crdt-server@localhost"
    """The ``From`` address of every email the server sends (a bare ``local@domain``; no
    name a person typed ever replaces it, see ``domain_mail.envelope``)."""
    email_digest_seconds: float = 300.0
    """One person gets at most one notification email per this many seconds (what comes in
    between goes in the next, as a digest); 0: each at once. ``urgent`` and ``emergency``
    messages are never held back."""

    def __post_init__(self) -> None:
        require_not_negative(self, "email_digest_seconds")
        local, at, domain = self.email_from.rpartition("@")
        if not (at and local and domain) or any(
            not ch.isprintable() or ch.isspace() or ch in '<>,;:"()[]\\' for ch in self.email_from
        ):
            raise SettingsError("email_from must be one bare address like 'plans@example.com'")
        if self.smtp_url and not self.smtp_url.startswith(("smtp://", "smtps://")):
            raise SettingsError("smtp_url must start with smtp:// or smtps://")
