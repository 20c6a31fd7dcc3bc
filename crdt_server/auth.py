"""Who is connecting: the identity every connection carries, and the authentication seam."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ANONYMOUS", "AllowAnonymous", "AuthError", "Authenticator", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user as seen by one connection."""

    user_id: str
    name: str
    role: str
    can_write: bool

    @property
    def key(self) -> str:
        """What makes two connections "the same user" (e.g. for awareness ownership)."""
        return self.user_id


ANONYMOUS = Principal(user_id="anonymous", name="Anonymous", role="anonymous", can_write=True)


class AuthError(Exception):
    """Refuse the request at the HTTP upgrade with ``status_code`` (401, 403, 429)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class Authenticator(Protocol):
    def authenticate(
        self, wedding_id: str, doc: str, token: str | None, headers: Mapping[str, str]
    ) -> Principal:
        """Return who this is and what they may do, or raise :class:`AuthError`."""


class AllowAnonymous:
    """Everybody may read and write: for local demos and benchmarks only."""

    def authenticate(
        self, wedding_id: str, doc: str, token: str | None, headers: Mapping[str, str]
    ) -> Principal:
        return ANONYMOUS
