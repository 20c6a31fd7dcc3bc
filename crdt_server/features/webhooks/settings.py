"""The outgoing webhooks' settings (``CRDT_SERVER_WEBHOOK_*``)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import SettingsError, require_positive

__all__ = ["WebhookSettings"]


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    webhook_retry_schedule: str = "0,5,300,1800,7200,18000,36000,36000"
    """Outgoing webhooks: seconds to wait before each attempt of a delivery, comma separated
    (the first is usually 0: at once); after the last one fails the delivery is a dead
    letter (listed, replayable)."""
    webhook_timeout_seconds: float = 10.0
    """Outgoing webhooks: an attempt with no complete answer within this fails (and is
    retried on the schedule)."""
    webhook_allow_private: bool = False
    """Outgoing webhooks may go to loopback, private, link-local and other non-public
    addresses (tests, receivers on the same network). Off: such URLs are refused when an
    endpoint is created and again at each attempt."""

    def __post_init__(self) -> None:
        require_positive(self, "webhook_timeout_seconds")
        _ = self.webhook_retries  # raises SettingsError when malformed

    @property
    def webhook_retries(self) -> tuple[float, ...]:
        """The webhook retry schedule: the delay before each attempt, in seconds."""
        try:
            delays = tuple(float(d) for d in self.webhook_retry_schedule.split(","))
        except ValueError as exc:
            raise SettingsError(
                "webhook_retry_schedule must be comma-separated seconds (0,5,300,...)"
            ) from exc
        if not delays or any(not 0 <= d <= 7 * 86400 for d in delays):
            raise SettingsError("webhook_retry_schedule: each delay 0 to 604800 seconds")
        return delays
