"""Who is connecting: the identity every connection carries, and the authentication seam.

An :class:`Authenticator` turns a request (room, token, headers) into a :class:`Principal`
or refuses it with an :class:`AuthError`: :class:`NotAuthenticated` for anything wrong with
the token, :class:`NotAllowed` for a valid token that may not see that document (the edge
gives each its HTTP status).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.auth.permissions import Access, PermissionMatrix
from crdt_server.auth.tokens import TokenClaims, TokenCodec, TokenError
from crdt_server.names import CONFLICTS

__all__ = [
    "ANONYMOUS",
    "AllowAnonymous",
    "AuthError",
    "NotAllowed",
    "NotAuthenticated",
    "Authenticator",
    "Principal",
    "Revocations",
    "TokenAuthenticator",
    "reader_key",
]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user as seen by one connection."""

    user_id: str
    name: str
    role: str
    can_write: bool
    expires_at: float | None = None
    """Unix time at which the connection must be closed with 4401 (token expiry)."""
    authenticated: bool = True
    email: str | None = None
    """The token's ``email`` claim, if any (for the member directory)."""
    can_operate: bool = False
    """Whether the operations ``operate`` access allows
    (:data:`crdt_server.auth.permissions.OPERATE_OPERATIONS`) may be run, over HTTP: true
    for ``write`` and ``operate`` (:attr:`Access.can_operate`). With ``can_write`` false
    (``operate``), its socket is read-only and only those operations run; a writer runs
    every operation."""

    session_id: str | None = None
    """The device session the token was minted from (its ``sid`` claim): a socket opened
    with it is not closed at :attr:`expires_at` but when that device session ends."""

    member: bool = True
    """Whether the member directory records this user (false: an operator's token,
    :attr:`crdt_server.auth.tokens.TokenClaims.member`)."""

    guest_fields: str | None = None
    """What they read of the guest list (:data:`~crdt_server.auth.permissions
    .GUEST_FIELD_SETS`, their token's ``guest_fields`` claim); ``None``: what the role
    reads. Every way a document, an event or a finding leaves for them asks the matrix with
    it (``hidden_fields(role, doc, guest_fields)``)."""

    @property
    def actor(self) -> Actor:
        """Who this user is, as changes and answers credit them."""
        return Actor(self.user_id, self.role)

    @property
    def reader(self) -> str:
        """What the fields it may read depend on: its role, and its field set of the guest
        list if it has one (``vendor+names``): a notice cut for one reader is told to the
        connections of that reader only (:func:`reader_key`)."""
        return reader_key(self.role, self.guest_fields)

    @property
    def key(self) -> str:
        """What makes two connections "the same user" (e.g. for awareness ownership)."""
        return self.user_id


def reader_key(role: str, fields: str | None) -> str:
    """:attr:`Principal.reader` of ``role`` with the field set ``fields``."""
    return role if fields is None else f"{role}+{fields}"


ANONYMOUS = Principal(
    user_id="anonymous",
    name="Anonymous",
    role="anonymous",
    can_write=True,
    authenticated=False,
    can_operate=True,
)


class AuthError(Exception):
    """A credential refused, in one of two kinds the edge answers alike at a route and at
    the WebSocket upgrade (``crdt_server.edge.problems.AUTH_STATUS``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticated(AuthError):
    """No credential, or one that is not good: malformed, badly signed, expired, revoked."""


class NotAllowed(AuthError):
    """A good credential that may not do this (another wedding, a document its role may
    not open)."""


class Authenticator(Protocol):
    """Who a credential is and what they may do. The HTTP edge verifies a request's token
    once (:meth:`verify`) and asks :meth:`authorize` per document it touches; the upgrade
    does both at once (:meth:`authenticate`)."""

    def verify(self, token: str | None) -> TokenClaims | None:
        """The token's verified claims; ``None`` when there is none and anonymous access
        is on. Raises :class:`NotAuthenticated`."""

    def authorize(self, claims: TokenClaims | None, wedding_id: str, doc: str) -> Principal:
        """Who verified ``claims`` are to one document (no signature check: that was
        :meth:`verify`'s), or raise :class:`NotAuthenticated` (revoked) or
        :class:`NotAllowed` (not theirs)."""

    def authenticate(
        self, wedding_id: str, doc: str, token: str | None, headers: Mapping[str, str]
    ) -> Principal:
        """Return who this is and what they may do, or raise :class:`AuthError`."""


ANONYMOUS_READER = dataclasses.replace(ANONYMOUS, can_write=False, can_operate=False)


def anonymous_for(doc: str) -> Principal:
    """Anonymous access: read and write, except the server-kept conflicts room."""
    return ANONYMOUS_READER if doc == CONFLICTS else ANONYMOUS


class AllowAnonymous:
    """Everybody may read and write: for local demos and benchmarks only."""

    def verify(self, token: str | None) -> TokenClaims | None:
        return None

    def authorize(self, claims: TokenClaims | None, wedding_id: str, doc: str) -> Principal:
        return anonymous_for(doc)

    def authenticate(
        self, wedding_id: str, doc: str, token: str | None, headers: Mapping[str, str]
    ) -> Principal:
        return anonymous_for(doc)


class Revocations:
    """Users whose sessions were revoked: tokens issued before the revocation are refused."""

    def __init__(self, keep_seconds: float = 7 * 24 * 3600) -> None:
        self._at: dict[tuple[str, str | None], float] = {}
        self._keep = keep_seconds
        self._sessions: dict[str, float] = {}
        """Ended device sessions (``sid``) -> when they were noticed ended here."""

    @property
    def keep_seconds(self) -> float:
        """How long a revocation is kept (at least the longest a token may live)."""
        return self._keep

    def end_session(self, sid: str) -> None:
        """Refuse every token minted from the device session ``sid`` from now on (it was
        signed out, revoked or went idle). Kept ``keep_seconds``: longer than any token
        minted from it lives."""
        now = clock.now()
        self._sessions.setdefault(sid, now)
        for key, when in list(self._sessions.items()):
            if now - when > self._keep:
                del self._sessions[key]

    def session_ended(self, sid: str) -> bool:
        """Whether the device session ``sid`` ended (as far as this process knows)."""
        return sid in self._sessions

    def revoke(self, sub: str, wedding: str | None = None, at: float | None = None) -> None:
        """Refuse ``sub``'s tokens issued at or before ``at`` (default: now); a later
        revocation of the same user and wedding wins. Keep ``keep_seconds`` at least the
        longest a token may live, or a revoked token could outlive its revocation."""
        now = clock.now()
        when = now if at is None else at
        self._at[(sub, wedding)] = max(when, self._at.get((sub, wedding), when))
        # Forget revocations older than any token could live.
        for key, when in list(self._at.items()):
            if now - when > self._keep:
                del self._at[key]

    def revoked_since(self, sub: str, wedding: str, since: float) -> bool:
        """Whether ``sub`` was revoked (everywhere or in ``wedding``) at or after ``since``:
        a credential checked at ``since`` (so issued before it) is now refused."""
        return any(
            (at := self._at.get(key)) is not None and at >= since
            for key in ((sub, None), (sub, wedding))
        )

    def revoked(self, claims: TokenClaims, wedding: str) -> bool:
        for key in ((claims.sub, None), (claims.sub, wedding)):
            at = self._at.get(key)
            # A token without iat cannot prove it came after the revocation.
            if at is not None and (claims.iat is None or claims.iat <= at):
                return True
        return False


class TokenAuthenticator:
    """JWT bearer tokens checked against the permission matrix."""

    def __init__(
        self,
        codec: TokenCodec,
        matrix: PermissionMatrix,
        revocations: Revocations,
        *,
        allow_anonymous: bool = False,
    ) -> None:
        self._codec = codec
        self._matrix = matrix
        self._revocations = revocations
        self._allow_anonymous = allow_anonymous

    def claims(self, token: str | None) -> TokenClaims:
        """Verify a token (:class:`NotAuthenticated` on any problem)."""
        if not token:
            raise NotAuthenticated("a token is required (token query parameter or Bearer header)")
        try:
            return self._codec.decode(token)
        except TokenError as exc:
            raise NotAuthenticated(str(exc)) from exc

    def verify(self, token: str | None) -> TokenClaims | None:
        if not token and self._allow_anonymous:
            return None
        return self.claims(token)

    def authenticate(
        self, wedding_id: str, doc: str, token: str | None, headers: Mapping[str, str]
    ) -> Principal:
        return self.authorize(self.verify(token), wedding_id, doc)

    def authorize(self, claims: TokenClaims | None, wedding_id: str, doc: str) -> Principal:
        if claims is None:
            if self._allow_anonymous:
                return anonymous_for(doc)
            raise NotAuthenticated("a token is required (token query parameter or Bearer header)")
        if self._revocations.revoked(claims, wedding_id):
            raise NotAuthenticated("token revoked")
        if claims.sid is not None and self._revocations.session_ended(claims.sid):
            raise NotAuthenticated("the device session of this token ended")
        if wedding_id not in claims.weddings:
            raise NotAllowed("token is not for this wedding")
        access = self._matrix.access(claims.role, doc, claims.docs, claims.guest_fields)
        if access is Access.NONE:
            if doc == "guests" and claims.guest_fields is not None:
                raise NotAllowed(
                    f"your membership reads {claims.guest_fields!r} of the guest list, "
                    "not the document"
                )
            raise NotAllowed(f"role {claims.role!r} may not open {doc!r}")
        return Principal(
            user_id=claims.sub,
            name=claims.name,
            role=claims.role,
            can_write=access.can_write,
            expires_at=claims.exp,
            email=claims.email,
            can_operate=access.can_operate,
            session_id=claims.sid,
            member=claims.member,
            guest_fields=claims.guest_fields,
        )
