"""The sign-in feature's settings: device sessions and sign-in links."""

from __future__ import annotations

import re
from dataclasses import dataclass

from crdt_server.settings import SettingsError

__all__ = ["SignInSettings"]

_APPLE_APP = re.compile(r"[A-Z0-9]{10}\.[A-Za-z0-9][A-Za-z0-9.-]{0,154}")
_ANDROID_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
_FINGERPRINT = re.compile(r"([0-9A-F]{2}:){31}[0-9A-F]{2}")


def _listed(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class SignInSettings:
    device_session_idle_days: float = 30.0
    """A device session (the sign-in a browser keeps in its cookie, a native app in its
    keychain) ends after this many days unused; its tokens stop and its sockets close with 4401."""
    sign_in_per_address_per_hour: int = 20
    """``POST /api/sign-in`` requests one client address may make an hour (more: 429)."""
    sign_in_per_email_per_hour: int = 5
    """Sign-in links one address may be sent an hour (more requests still answer 202 and
    send nothing)."""
    apple_app_ids: str = ""
    """The iOS apps (``TEAMID.bundle.id``, comma-separated) that open this server's native
    sign-in links (``/app/sign-in-app#code=...``) as universal links: served in
    ``/.well-known/apple-app-site-association`` (404 while empty)."""
    android_app_package: str = ""
    """The Android app (its package name) that opens this server's native sign-in links as
    verified App Links: served in ``/.well-known/assetlinks.json`` with
    ``CRDT_SERVER_ANDROID_APP_FINGERPRINTS`` (404 while empty)."""
    android_app_fingerprints: str = ""
    """The SHA-256 fingerprints of the Android app's signing certificates (``AB:CD:...``,
    32 bytes each, comma-separated); required with ``CRDT_SERVER_ANDROID_APP_PACKAGE``."""

    def __post_init__(self) -> None:
        if not 0 < self.device_session_idle_days <= 400:
            raise SettingsError("device_session_idle_days must be more than 0, at most 400")
        for name in ("sign_in_per_address_per_hour", "sign_in_per_email_per_hour"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        for app in _listed(self.apple_app_ids):
            if not _APPLE_APP.fullmatch(app):
                raise SettingsError("apple_app_ids must be TEAMID.bundle.id, comma-separated")
        if self.android_app_package and not _ANDROID_PACKAGE.fullmatch(self.android_app_package):
            raise SettingsError("android_app_package must be a package name (com.example.app)")
        prints = _listed(self.android_app_fingerprints)
        if any(not _FINGERPRINT.fullmatch(f.upper()) for f in prints):
            raise SettingsError(
                "android_app_fingerprints must be SHA-256 fingerprints (AB:CD:... 32 bytes)"
            )
        if bool(self.android_app_package) != bool(prints):
            raise SettingsError("android_app_package and android_app_fingerprints go together")

    @property
    def apple_apps(self) -> tuple[str, ...]:
        """:attr:`apple_app_ids` as a tuple."""
        return _listed(self.apple_app_ids)

    @property
    def android_fingerprints(self) -> tuple[str, ...]:
        """:attr:`android_app_fingerprints` as a tuple, upper case."""
        return tuple(f.upper() for f in _listed(self.android_app_fingerprints))
