"""Signed tokens (JWT): verify what an app backend signed, mint tokens for operators.

Claims: ``sub`` (user id), ``name``, ``wedding`` (one id or a list), ``role``, ``exp``,
``iat`` and optionally ``docs`` (per-document access overrides). HS256 uses a shared secret;
RS256/ES256 need only the public key on the server. The accepted algorithms are an explicit
allowlist, so ``alg: none`` and HS/RS confusion are refused.

``exp`` and ``iat`` are required, must be finite numbers of Unix seconds (not booleans, not
beyond the year 9999), ``iat`` may not lie in the future (beyond a minute of clock skew) and
``exp - iat`` may not exceed the maximum lifetime: a token minted to live for ever, or
to dodge revocations by claiming a later ``iat``, is refused like any bad token.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from crdt_server import clock
from crdt_server.auth.permissions import (
    GUEST_FIELD_SETS,
    ROLES,
    Access,
    PermissionsError,
    parse_overrides,
)
from crdt_server.names import valid_wedding_id

__all__ = [
    "SECRET_FILE",
    "TokenClaims",
    "TokenCodec",
    "TokenError",
    "load_or_create_secret",
    "valid_email",
    "valid_sub",
]

SECRET_FILE = "auth_secret"
_HMAC = frozenset({"HS256", "HS384", "HS512"})
_ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"})
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z: later "times" are attacks, not dates
CLOCK_SKEW = 60.0
"""Seconds an ``iat`` may lie in the future (the signer's clock runs ahead of ours)."""


class TokenError(Exception):
    """The token is missing, malformed, badly signed, expired or not acceptable."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    name: str
    role: str
    weddings: tuple[str, ...]
    exp: float
    iat: float | None
    docs: Mapping[str, Access] = field(default_factory=dict)
    auth_time: float | None = None
    """When the person signed in (the first token's ``iat``), kept across refreshes."""
    email: str | None = None
    """The person's address (optional ``email`` claim), kept in the member directory."""
    sid: str | None = None
    """The device session it was minted from (``sid`` claim): a socket opened with it
    outlives ``exp`` and closes when that device session ends; ``None`` for operator and
    app-backend tokens (their sockets close at ``exp``)."""
    member: bool = True
    """Whether its holder is a member of the weddings it opens (the member directory
    records them): false for an operator's token (``"member": false``, what
    ``crdt-server token`` mints unless told ``--member``), which reads and writes as its
    role but is nobody the couple sees in Members or may pick as an owner."""
    guest_fields: str | None = None
    """What its holder reads of the guest list (``guest_fields`` claim, one of
    :data:`~crdt_server.auth.permissions.GUEST_FIELD_SETS`): the field set the couple chose
    for a vendor member, minted from their membership; ``None``: what the role reads."""


def load_or_create_secret(data_dir: Path) -> bytes:
    """The HS256 secret kept in ``data_dir``: created (0600) on first use, never logged."""
    path = data_dir / SECRET_FILE
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        # Two processes starting at once: the first link wins, both then read the same file.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


class TokenCodec:
    """Verifies (and, with a secret, mints) tokens under one algorithm allowlist."""

    def __init__(
        self,
        *,
        algorithms: Sequence[str],
        secret: bytes | None = None,
        public_key: str | None = None,
        leeway: float = 0.0,
        max_lifetime: float = 30 * 24 * 3600,
    ) -> None:
        unknown = set(algorithms) - _HMAC - _ASYMMETRIC
        if unknown or not algorithms:
            raise ValueError(f"unsupported token algorithms: {sorted(unknown) or 'none given'}")
        if set(algorithms) & _HMAC and not secret:
            raise ValueError("an HS* algorithm needs a secret")
        if set(algorithms) & _ASYMMETRIC and not public_key:
            raise ValueError("RS*/ES* algorithms need a public key")
        self._algorithms = list(algorithms)
        self._secret = secret
        self._public_key = public_key
        self._leeway = leeway
        self.max_lifetime = max_lifetime
        """Longest ``exp - iat`` accepted (and minted), in seconds."""

    def decode(self, token: str) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed token") from exc
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise TokenError(f"token algorithm {alg!r} is not accepted")
        # The key follows from the allowlisted algorithm, never from the token: an RS256
        # public key can never be used as an HMAC secret.
        key: Any = self._secret if alg in _HMAC else self._public_key
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[alg],
                # PyJWT would compare the time claims with the real time: they are
                # checked below against the server's clock (crdt_server.clock).
                options={
                    "require": ["exp", "iat", "sub", "role", "wedding"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from exc
        except (OverflowError, ValueError, TypeError) as exc:
            # PyJWT converts time claims with int()/float(): a 400-digit exp overflows.
            raise TokenError("invalid token: a time claim is not a usable number") from exc
        claims = _claims(payload)
        _check_times(claims, payload, clock.now(), self._leeway)
        assert claims.iat is not None  # required above, checked by _claims
        if claims.exp - claims.iat > self.max_lifetime:
            raise TokenError(
                f"token lives longer than {int(self.max_lifetime)} seconds (exp - iat)"
            )
        return claims

    @property
    def can_mint(self) -> bool:
        """Whether :meth:`mint` can sign (HS256 with a secret)."""
        return self._secret is not None and "HS256" in self._algorithms

    def mint(
        self,
        *,
        sub: str,
        role: str,
        wedding: str | Sequence[str],
        name: str | None = None,
        ttl: float = 3600,
        docs: Mapping[str, str] | None = None,
        auth_time: int | None = None,
        email: str | None = None,
        sid: str | None = None,
        member: bool = True,
        guest_fields: str | None = None,
    ) -> str:
        """Sign an HS256 token (needs the secret); validates what it signs. ``member``
        false: an operator's token, never recorded as a member (:attr:`TokenClaims.member`)."""
        if not self.can_mint or self._secret is None:
            raise ValueError("minting needs HS256 with a secret")
        if not 0 < ttl <= self.max_lifetime:
            raise ValueError(f"ttl must be 1 to {int(self.max_lifetime)} seconds")
        now = int(clock.now())
        payload: dict[str, Any] = {
            "sub": sub,
            "name": name or sub,
            "role": role,
            "wedding": wedding if isinstance(wedding, str) else list(wedding),
            "iat": now,
            "exp": now + int(ttl),
        }
        if docs:
            payload["docs"] = dict(docs)
        if auth_time is not None:
            payload["auth_time"] = auth_time
        if email is not None:
            payload["email"] = email
        if sid is not None:
            payload["sid"] = sid
        if not member:
            payload["member"] = False
        if guest_fields is not None:
            payload["guest_fields"] = guest_fields
        _claims(payload)  # never sign something decode() would refuse
        return jwt.encode(payload, self._secret, algorithm="HS256")


def _check_times(
    claims: TokenClaims, payload: Mapping[str, Any], now: float, leeway: float
) -> None:
    """Refuse a token expired at ``now`` (``exp``), not valid yet (``nbf``) or issued in
    the future (``iat``, beyond :data:`CLOCK_SKEW`), each with ``leeway`` seconds of
    tolerance: the server's clock decides, never the library's reading of the real time."""
    if claims.exp <= now - leeway:
        raise TokenError("token expired")
    if "nbf" in payload and _seconds(payload, "nbf") > now + leeway:
        raise TokenError("token is not valid yet (claim 'nbf')")
    assert claims.iat is not None  # required by decode, checked by _claims
    if claims.iat > now + max(CLOCK_SKEW, leeway):
        raise TokenError("claim 'iat' lies in the future")


def _claims(payload: Mapping[str, Any]) -> TokenClaims:
    sub, role, name = payload.get("sub"), payload.get("role"), payload.get("name")
    if not isinstance(sub, str) or not sub or len(sub) > 256:
        raise TokenError("claim 'sub' must be a non-empty string")
    if role not in ROLES:
        raise TokenError(f"claim 'role' must be one of {', '.join(ROLES)}")
    if name is None:
        name = sub
    if not isinstance(name, str) or len(name) > 256:
        raise TokenError("claim 'name' must be a string")
    raw_weddings = payload.get("wedding")
    weddings = (raw_weddings,) if isinstance(raw_weddings, str) else raw_weddings
    if (
        not isinstance(weddings, list | tuple)
        or not weddings
        or not all(isinstance(w, str) and valid_wedding_id(w) for w in weddings)
    ):
        raise TokenError("claim 'wedding' must be a wedding id or a list of them")
    exp = _seconds(payload, "exp")
    iat = _seconds(payload, "iat") if "iat" in payload else None
    auth_time = payload.get("auth_time")
    member = payload.get("member", True)
    if not isinstance(member, bool):
        raise TokenError("claim 'member' must be true or false")
    guest_fields = payload.get("guest_fields")
    if guest_fields is not None and guest_fields not in GUEST_FIELD_SETS:
        raise TokenError(f"claim 'guest_fields' must be one of {', '.join(GUEST_FIELD_SETS)}")
    try:
        docs = parse_overrides(payload.get("docs", {}))
    except PermissionsError as exc:
        raise TokenError(f"claim {exc}") from exc
    return TokenClaims(
        sub=sub,
        name=name,
        role=str(role),
        weddings=tuple(weddings),
        exp=exp,
        iat=iat,
        docs=docs,
        auth_time=float(auth_time) if isinstance(auth_time, int | float) else None,
        email=_email(payload.get("email")),
        sid=_sid(payload.get("sid")),
        member=member,
        guest_fields=None if guest_fields is None else str(guest_fields),
    )


def _sid(value: Any) -> str | None:
    """The optional ``sid`` claim: a device session id the server made (``d_`` and up to
    64 URL-safe characters)."""
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value.startswith("d_")
        or not 3 <= len(value) <= 66
        or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    ):
        raise TokenError("claim 'sid' must be a device session id")
    return value


def _email(value: Any) -> str | None:
    """The optional ``email`` claim: one plausible address (it is mailed to) or nothing."""
    if value is None:
        return None
    if not isinstance(value, str) or not valid_email(value):
        raise TokenError("claim 'email' must be an email address")
    return value


def valid_email(value: str) -> bool:
    """A single ``local@domain`` address, no spaces, no header-breaking characters."""
    local, at, domain = value.rpartition("@")
    return (
        bool(at and local and "." in domain)
        and len(value) <= 254
        and not any(c.isspace() or c in '<>,;:"()[]\\' or ord(c) < 32 for c in value)
    )


def valid_sub(value: str) -> bool:
    """A person's id as the member routes take it: 1 to 256 characters, no control
    characters (it is shown in the directory and written into emails)."""
    return 1 <= len(value) <= 256 and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)


def _seconds(payload: Mapping[str, Any], key: str) -> float:
    """A time claim: a finite number of Unix seconds from 1970 to the year 9999."""
    value = payload.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenError(f"claim '{key}' must be a number of seconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise TokenError(f"claim '{key}' must be finite")
    if not 0 <= value <= _LAST_SECOND:
        raise TokenError(f"claim '{key}' is out of range")
    return float(value)
