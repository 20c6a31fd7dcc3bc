"""Web Push's pure parts: the VAPID key and its signed token (RFC 8292), the message's
encryption (RFC 8291, ``aes128gcm`` through ``http_ece``), what a notification's payload
says, and quiet hours."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, available_timezones

import http_ece  # type: ignore[import-untyped]
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = [
    "MAX_PAYLOAD",
    "BODY_CHARS",
    "Payload",
    "VapidKey",
    "b64url",
    "encrypt",
    "quiet_until",
    "unb64url",
]

MAX_PAYLOAD = 3072
"""Bytes of a payload before encryption (push services take about 4 KB after it)."""
BODY_CHARS = 80
"""Characters of a thread message a push shows."""
_TITLE_CHARS = 120
JWT_SECONDS = 12 * 3600
"""How long a VAPID token is valid (RFC 8292 allows at most 24 h)."""


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """Raises ``ValueError`` on anything but base64url (padded or not)."""
    if any(
        c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=" for c in text
    ):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class VapidKey:
    """The server's P-256 key pair that signs push requests."""

    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def parse(cls, text: str) -> VapidKey:
        """From PEM, or the 32-byte private scalar in base64url (as ``web-push`` tools
        print it). Raises ``ValueError``."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
                key.curve, ec.SECP256R1
            ):
                raise ValueError("the VAPID key must be a P-256 (prime256v1) EC key")
            return cls(key)
        raw = unb64url(text)
        if len(raw) != 32:
            raise ValueError("a raw VAPID key is 32 bytes in base64url")
        return cls(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()))

    def pem(self) -> str:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    @property
    def public(self) -> str:
        """The public key as browsers take it (``applicationServerKey``): the uncompressed
        point in base64url."""
        return b64url(
            self.private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    def authorization(self, endpoint: str, subject: str, now: float) -> str:
        """The ``Authorization`` header of a push request to ``endpoint`` (RFC 8292: the
        ``vapid`` scheme, a token for the endpoint's origin and the public key)."""
        parts = urlsplit(endpoint)
        claims = {
            "aud": f"{parts.scheme}://{parts.netloc}",
            "exp": int(now) + JWT_SECONDS,
            "sub": subject,
        }
        token = jwt.encode(claims, self.private, algorithm="ES256")
        return f"vapid t={token}, k={self.public}"


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """The message body for a subscription (RFC 8291 ``aes128gcm``), with a fresh sender
    key and salt. Raises ``ValueError`` for keys that are not a P-256 point and a 16-byte
    secret."""
    receiver = unb64url(p256dh)
    secret = unb64url(auth)
    if len(receiver) != 65 or receiver[0] != 4 or len(secret) != 16:
        raise ValueError("p256dh must be an uncompressed P-256 point and auth 16 bytes")
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), receiver)  # on the curve
    sender = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        payload,
        salt=os.urandom(16),
        private_key=sender,
        dh=receiver,
        auth_secret=secret,
        version="aes128gcm",
    )
    return body


def _cut(text: str, most: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= most else text[: most - 1] + "\u2026"


@dataclass(frozen=True, slots=True)
class Payload:
    """What a push says: its wedding, type, title, the start of a body, the URL the app
    opens, and a tag (the same tag replaces an earlier notification on the device)."""

    wedding: str
    type: str
    title: str
    body: str
    url: str
    tag: str

    def encode(self) -> bytes:
        """As JSON, at most :data:`MAX_PAYLOAD` bytes (the title and body are cut)."""
        shown: dict[str, Any] = {
            "wedding": self.wedding,
            "type": self.type,
            "title": _cut(self.title, _TITLE_CHARS),
            "body": _cut(self.body, BODY_CHARS),
            "url": self.url,
            "tag": self.tag,
        }
        data = json.dumps(shown, ensure_ascii=False, separators=(",", ":")).encode()
        if len(data) > MAX_PAYLOAD:  # only ids and the URL are left uncut: all bounded
            shown["title"] = _cut(self.title, 40)
            shown["body"] = ""
            data = json.dumps(shown, separators=(",", ":")).encode()
        return data


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def valid_hour(text: str) -> bool:
    """Whether ``text`` is ``HH:MM`` (00:00 to 23:59)."""
    if len(text) != 5 or text[2] != ":" or not (text[:2] + text[3:]).isdigit():
        return False
    return int(text[:2]) < 24 and int(text[3:]) < 60


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo | None:
    """The IANA zone ``name`` (``None``: not one the zone database lists; a name from
    that list only, never a path handed to the file system)."""
    return ZoneInfo(name) if name in _zones() else None


def quiet_until(now: float, start: str, end: str, zone_name: str) -> float | None:
    """When quiet hours ``start``-``end`` (``HH:MM`` in ``zone_name``, over midnight when
    ``end`` is earlier) that hold at ``now`` end; ``None`` outside them (or none set)."""
    where = zone(zone_name)
    if not start or not end or where is None or start == end:
        return None
    local = datetime.fromtimestamp(now, where)
    minute = local.hour * 60 + local.minute
    first, last = _minutes(start), _minutes(end)
    inside = first <= minute < last if first < last else minute >= first or minute < last
    if not inside:
        return None
    day = local.date() if minute < last else local.date() + timedelta(days=1)
    ends = datetime(day.year, day.month, day.day, last // 60, last % 60, tzinfo=where)
    return ends.timestamp()
