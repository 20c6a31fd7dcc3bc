"""Minting test tokens that the kit's servers accept."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from crdt_server.auth.tokens import TokenCodec

__all__ = ["TokenMinter", "bearer", "new_secret"]


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header carrying ``token``."""
    return {"Authorization": f"Bearer {token}"}


def new_secret() -> str:
    """A fresh HS256 secret (64 hex digits: above the 32-byte minimum)."""
    return secrets.token_hex(32)


class TokenMinter:
    """Signs HS256 tokens with ``secret``; start servers with ``CRDT_SERVER_AUTH_SECRET``
    set to the same secret (the kit's fixtures do) so that they accept them.

    ``minter(sub="ann", role="couple", wedding="w1")`` returns the token; ``ttl`` (seconds),
    ``name`` and per-document ``docs`` overrides are passed through.
    """

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._codec = TokenCodec(algorithms=["HS256"], secret=secret.encode())

    def __call__(
        self,
        sub: str = "tester",
        role: str = "planner",
        wedding: str | Sequence[str] = "w1",
        *,
        name: str | None = None,
        ttl: float = 3600,
        docs: Mapping[str, str] | None = None,
    ) -> str:
        return self._codec.mint(sub=sub, role=role, wedding=wedding, name=name, ttl=ttl, docs=docs)

    def headers(
        self,
        role: str = "planner",
        sub: str = "ada",
        wedding: str | Sequence[str] = "w1",
        *,
        ttl: float = 600,
        name: str | None = None,
        email: str | None = None,
    ) -> dict[str, str]:
        """The ``Authorization`` header of a fresh token: role first, as tests mostly vary
        the role (``minter.headers("vendor", "eve")``)."""
        token = self._codec.mint(
            sub=sub, role=role, wedding=wedding, name=name, ttl=ttl, email=email
        )
        return bearer(token)

    @property
    def codec(self) -> TokenCodec:
        """The codec behind it (to decode what a server minted with the same secret)."""
        return self._codec

    @property
    def env(self) -> dict[str, str]:
        """The environment a server needs to accept these tokens."""
        return {"CRDT_SERVER_AUTH_SECRET": self.secret}
