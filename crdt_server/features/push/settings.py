"""The push notifications' settings (``CRDT_SERVER_VAPID_*``, ``CRDT_SERVER_PUSH_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import SettingsError, require_positive

__all__ = ["PushSettings"]


@dataclass(frozen=True, slots=True)
class PushSettings:
    vapid_private_key: str = ""
    """The VAPID key (RFC 8292) that signs every push request: a P-256 private key as PEM
    or as the 32-byte scalar in base64url. Empty: one is generated at the first start and
    kept in the store (every process and host of the store signs with it). Changing it
    makes every browser subscribe again (the app sees the new public key)."""
    vapid_subject: str = "mailto:crdt-server@localhost"
    """The VAPID ``sub`` claim: how a push service reaches the operator (``mailto:`` or
    ``https:``)."""
    push_allow_private: bool = False
    """Push endpoints may be loopback or private addresses and plain ``http`` (tests
    only: logged loudly at start). Off: an endpoint must be ``https`` to a public address,
    checked when it is registered and again at each attempt."""
    push_timeout_seconds: float = 10.0
    """A push request with no complete answer within this fails (and is retried)."""
    push_retry_schedule: str = "0,5,30,300,1800"
    """Seconds to wait before each attempt of a push message, comma separated; after the
    last one fails, the message is dropped (the inbox still has the notification)."""
    push_ttl_seconds: int = 86400
    """How long a push service keeps a message for a device that is offline (``TTL``)."""

    def __post_init__(self) -> None:
        require_positive(self, "push_timeout_seconds", "push_ttl_seconds")
        if not self.vapid_subject.startswith(("mailto:", "https:")):
            raise SettingsError("vapid_subject must start with mailto: or https:")
        _ = self.push_retries

    @property
    def push_retries(self) -> tuple[float, ...]:
        """The delay before each attempt, in seconds."""
        try:
            delays = tuple(float(d) for d in self.push_retry_schedule.split(","))
        except ValueError as exc:
            raise SettingsError("push_retry_schedule must be comma-separated seconds") from exc
        if not delays or any(not 0 <= d <= 7 * 86400 for d in delays):
            raise SettingsError("push_retry_schedule: each delay 0 to 604800 seconds")
        return delays
