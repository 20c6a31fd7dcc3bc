"""Who may open a sync socket: every check made at the upgrade, before any WebSocket exists.

Both ways into a room use it: the Starlette endpoint (:mod:`crdt_server.edge.asgi_ws`) and the
bare RFC 6455 protocol that uvicorn runs for the sync path (:mod:`crdt_server.wire.websocket`),
which knows it as :class:`crdt_server.wire.gate.UpgradeGate`. A refusal
(:class:`~crdt_server.wire.gate.Refusal`) is an HTTP status and a short text, because the
stock y-websocket client reconnects at once after any accepted-then-closed socket.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from crdt_server.auth.principals import Authenticator, AuthError, Principal
from crdt_server.core.hooks import Hooks
from crdt_server.core.limits import ConnectionCounter, RateLimiter
from crdt_server.core.multiplex import DIALECT, Grant, Multiplexer
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.session import Dialect, serve_connection
from crdt_server.edge.problems import auth_status
from crdt_server.names import document_name, projection_of
from crdt_server.settings import Settings
from crdt_server.wire.gate import NO_SUCH_DOCUMENT, STATE_KEY, Refusal, UpgradeGate
from crdt_server.wire.transport import Transport

__all__ = [
    "NO_SUCH_DOCUMENT",
    "STATE_KEY",
    "Admitted",
    "Gate",
    "Projector",
    "Refusal",
    "SocketAdmitted",
    "projector_of",
]

log = logging.getLogger("crdt_server.edge.upgrade")


@dataclass(frozen=True, slots=True)
class Admitted:
    """A connection let in; it holds connection-count slots until :meth:`Gate.release`."""

    name: str
    principal: Principal
    address: str
    counted: bool


@dataclass(frozen=True, slots=True)
class SocketAdmitted:
    """A Hocuspocus socket let in (``/collab``): its documents are let in one by one by
    their Auth messages. It holds an address slot until :meth:`Gate.release`."""

    wedding: str | None
    """The one wedding its documents may belong to (``/collab/{wedding_id}``), or ``None``."""
    headers: Mapping[str, str]
    address: str


UPGRADE_RETRY_SECONDS = 1
"""``Retry-After`` when upgrades from one address come faster than allowed per second."""
SLOT_RETRY_SECONDS = 5
"""``Retry-After`` when an address or a user has as many connections open as allowed."""


@runtime_checkable
class Projector(Protocol):
    """What serves a reader a projection of a document instead of the document (the
    projections feature, when the server runs it): a server-written room without the
    fields the reader may not read, keyed by the fields it holds (a role and, for a vendor
    member, the field set the couple chose: ``Principal.guest_fields``)."""

    def room_for(
        self, wedding_id: str, doc: str, role: str, fields: str | None = None
    ) -> str | None:
        """The projection room ``role`` with field set ``fields`` reads ``doc`` through,
        or ``None``."""
        ...

    def projected_documents(self, role: str, fields: str | None = None) -> list[str]:
        """The documents ``role`` with field set ``fields`` reads through projections,
        sorted."""
        ...

    async def current(self, name: str) -> None:
        """Wait until projection ``name`` holds what its source has committed now."""
        ...


def projector_of(hooks: Hooks) -> Projector | None:
    """The server's :class:`Projector` among its extensions, if it runs one."""
    return hooks.first(Projector)  # type: ignore[type-abstract]  # a runtime-checkable protocol


class Gate:
    def __init__(
        self,
        settings: Settings,
        registry: RoomRegistry,
        authenticator: Authenticator,
        *,
        upgrade_limiter: RateLimiter,
        address_connections: ConnectionCounter,
        user_connections: ConnectionCounter,
        gone: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self._authenticator = authenticator
        self._upgrades = upgrade_limiter
        self._per_address = address_connections
        self._per_user = user_connections
        self._gone = gone
        """Whether a wedding id was erased (refused with 410, whatever the token)."""

    def admit(
        self,
        wedding_id: str,
        doc: str,
        *,
        token: str | None,
        headers: Mapping[str, str],
        address: str,
    ) -> Admitted | Refusal:
        """Check one upgrade, in order: name, origin, upgrade rate, token, open connections.

        ``headers`` has lower-case names. An :class:`Admitted` must be released.
        """
        name = document_name(wedding_id, doc)
        if name is None:
            return self.refuse(NO_SUCH_DOCUMENT)
        refusal = self._check_socket(wedding_id, headers, address)
        if refusal is not None:
            return self.refuse(refusal)
        try:
            principal = self._authenticator.authenticate(wedding_id, doc, token, headers)
        except AuthError as exc:
            return self.refuse(Refusal(auth_status(exc), exc.message))
        if not self._per_address.acquire(address):
            return self.refuse(
                Refusal(429, "too many open connections from this address", SLOT_RETRY_SECONDS)
            )
        counted = principal.authenticated
        if counted and not self._per_user.acquire(principal.user_id):
            self._per_address.release(address)
            return self.refuse(
                Refusal(429, "too many open connections for this user", SLOT_RETRY_SECONDS)
            )
        name, principal = self._room_for(wedding_id, doc, name, principal)
        return Admitted(name, principal, address, counted)

    def _check_socket(
        self, wedding_id: str | None, headers: Mapping[str, str], address: str
    ) -> Refusal | None:
        """The checks of an upgrade before its token: wedding erased, origin, rate."""
        if wedding_id is not None and self._gone is not None and self._gone(wedding_id):
            return Refusal(410, "this wedding was deleted")
        origin = headers.get("origin")
        origins = self.settings.origins
        if origin is not None and origins and origin.rstrip("/") not in origins:
            return Refusal(403, "origin not allowed")
        if not self._upgrades.allow(address):
            return Refusal(429, "too many connection attempts, slow down", UPGRADE_RETRY_SECONDS)
        return None

    def _room_for(
        self, wedding_id: str, doc: str, name: str, principal: Principal
    ) -> tuple[str, Principal]:
        """The room ``principal`` syncs ``doc`` through, and as whom."""
        projections = projector_of(self.registry.hooks)
        projected = projections and projections.room_for(
            wedding_id, doc, principal.role, principal.guest_fields
        )
        if projected:
            # Fields of this document are hidden from the role: it syncs with the
            # server-written projection instead, read-only whatever its token says.
            return projected, dataclasses.replace(principal, can_write=False)
        return name, principal

    def admit_socket(
        self, wedding_id: str | None, *, headers: Mapping[str, str], address: str
    ) -> SocketAdmitted | Refusal:
        """Check the upgrade of a Hocuspocus socket (``/collab``, ``/collab/{wedding_id}``):
        the wedding, origin, upgrade rate and the address's open connections; its tokens
        come in band, one per document (:meth:`authorize_document`)."""
        if wedding_id is not None and document_name(wedding_id, "timeline") is None:
            return self.refuse(NO_SUCH_DOCUMENT)
        refusal = self._check_socket(wedding_id, headers, address)
        if refusal is not None:
            return self.refuse(refusal)
        if not self._per_address.acquire(address):
            return self.refuse(
                Refusal(429, "too many open connections from this address", SLOT_RETRY_SECONDS)
            )
        return SocketAdmitted(wedding_id, headers, address)

    def authorize_document(self, socket: SocketAdmitted, name: str, token: str) -> Grant | str:
        """Let one document of a Hocuspocus socket in: the checks of an upgrade of
        ``/sync`` that a token makes (name, erased wedding, token, the user's open
        connections, projections), or the reason it may not (told to the provider)."""
        wedding_id, _, doc = name.partition("/")
        if document_name(wedding_id, doc) is None:
            return "no such document"
        if self._gone is not None and self._gone(wedding_id):
            return "this wedding was deleted"
        try:
            principal = self._authenticator.authenticate(
                wedding_id, doc, token or None, socket.headers
            )
        except AuthError as exc:
            self.registry.metrics.upgrades_refused.labels(str(auth_status(exc))).inc()
            return exc.message
        counted = principal.authenticated
        if counted and not self._per_user.acquire(principal.user_id):
            return "too many open connections for this user"
        room, principal = self._room_for(wedding_id, doc, name, principal)
        return Grant(room, principal, counted)

    def release_document(self, grant: Grant) -> None:
        if grant.counted:
            self._per_user.release(grant.principal.user_id)

    def refuse(self, refusal: Refusal) -> Refusal:
        """Count a refusal in the metrics and return it."""
        self.registry.metrics.upgrades_refused.labels(str(refusal.status)).inc()
        return refusal

    def release(self, admitted: Admitted | SocketAdmitted) -> None:
        self._per_address.release(admitted.address)
        if isinstance(admitted, Admitted) and admitted.counted:
            self._per_user.release(admitted.principal.user_id)

    async def serve(
        self, transport: Transport, admitted: Admitted | SocketAdmitted, *, peer: str
    ) -> None:
        """Run the accepted connection to its end, then give back its slots."""
        metrics = self.registry.metrics
        metrics.sync_connections.labels(metrics.worker).inc()
        try:
            if isinstance(admitted, SocketAdmitted):
                documents = _SocketDocuments(self, admitted)
                await Multiplexer(
                    transport,
                    documents,
                    wedding=admitted.wedding,
                    peer=peer,
                    metrics=metrics,
                    max_documents=self.settings.max_documents_per_socket,
                ).run()
            else:
                await self.serve_room(transport, admitted.name, admitted.principal, peer=peer)
        finally:
            self.release(admitted)

    def serve_room(
        self,
        transport: Transport,
        name: str,
        principal: Principal,
        *,
        peer: str,
        dialect: Dialect | None = None,
    ) -> Awaitable[object]:
        """Run one document's session (a projection brought up to date first): what to
        await. Not a coroutine of its own: a document that is no projection is served by
        :func:`serve_connection`'s coroutine itself, without one more frame held for as
        long as its connection lives (about 300 bytes on every idle connection; issue 76)."""
        if projection_of(name) is not None:
            projections = projector_of(self.registry.hooks)
            if projections is not None:
                return self._serve_projection(
                    projections, transport, name, principal, peer=peer, dialect=dialect
                )
        return serve_connection(
            transport, self.registry, name, principal, self.settings, peer=peer, dialect=dialect
        )

    async def _serve_projection(
        self,
        projections: Projector,
        transport: Transport,
        name: str,
        principal: Principal,
        *,
        peer: str,
        dialect: Dialect | None,
    ) -> None:
        try:  # built and current before its first sync step
            await projections.current(name)
        except Exception as exc:  # a stale projection still hides what it must
            log.warning("projection %s not brought up to date: %r", name, exc)
        await serve_connection(
            transport, self.registry, name, principal, self.settings, peer=peer, dialect=dialect
        )


class _SocketDocuments:
    """The gate as one Hocuspocus socket's documents need it
    (:class:`crdt_server.core.multiplex.DocumentGate`)."""

    def __init__(self, gate: Gate, socket: SocketAdmitted) -> None:
        self._gate = gate
        self._socket = socket
        self.settings = gate.settings

    def authorize(self, name: str, token: str) -> Grant | str:
        return self._gate.authorize_document(self._socket, name, token)

    def release(self, grant: Grant) -> None:
        self._gate.release_document(grant)

    async def serve(self, transport: Transport, grant: Grant, *, peer: str) -> None:
        await self._gate.serve_room(
            transport, grant.room, grant.principal, peer=peer, dialect=DIALECT
        )


_AS_THE_WIRE_SEES_IT: type[UpgradeGate[Admitted | SocketAdmitted]] = Gate
"""The gate is what the wire's native protocol needs (checked by mypy)."""
