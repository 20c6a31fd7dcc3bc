"""The sign-in feature's settings: device sessions and sign-in links."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import SettingsError

__all__ = ["SignInSettings"]


@dataclass(frozen=True, slots=True)
class SignInSettings:
    device_session_idle_days: float = 30.0
    """A device session (the sign-in a browser keeps in its cookie) ends after this many
    days unused; its tokens stop and its sockets close with 4401."""
    sign_in_per_address_per_hour: int = 20
    """``POST /api/sign-in`` requests one client address may make an hour (more: 429)."""
    sign_in_per_email_per_hour: int = 5
    """Sign-in links one address may be sent an hour (more requests still answer 202 and
    send nothing)."""

    def __post_init__(self) -> None:
        if not 0 < self.device_session_idle_days <= 400:
            raise SettingsError("device_session_idle_days must be more than 0, at most 400")
        for name in ("sign_in_per_address_per_hour", "sign_in_per_email_per_hour"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
