"""The app factory: one Starlette app whose lifespan owns every long-lived resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.routing import Route as StarletteRoute

from crdt_server.auth.permissions import PermissionMatrix
from crdt_server.auth.principals import Authenticator, Revocations, TokenAuthenticator
from crdt_server.auth.tokens import CLOCK_SKEW, TokenCodec, load_or_create_secret
from crdt_server.cluster.bus import Bus, LocalBus
from crdt_server.cluster.messages import ADMIN_MESSAGES, Delete, Lift, Revoke, from_event
from crdt_server.core.adoption import ADOPTIONS_SCHEMA
from crdt_server.core.client_ids import CLIENT_OWNERS_SCHEMA, ClientIds
from crdt_server.core.erasure import ErasureService
from crdt_server.core.hooks import Core, Extension, Hooks
from crdt_server.core.limits import ConnectionCounter, RateLimiter
from crdt_server.core.metrics import Metrics
from crdt_server.core.operation_keys import OPERATION_KEYS_SCHEMA
from crdt_server.core.quarantine import QUARANTINE_SCHEMA, ApplySlot, Quarantine
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.services import RoomServices
from crdt_server.core.weddings import WeddingService
from crdt_server.documents.domain import WEDDINGS
from crdt_server.edge.access import AccessMiddleware
from crdt_server.edge.admin import admin_routes
from crdt_server.edge.asgi_ws import (
    collab_endpoint,
    not_found_endpoint,
    plain_http_endpoint,
    sync_endpoint,
)
from crdt_server.edge.docs import reference_routes
from crdt_server.edge.documents import document_routes
from crdt_server.edge.erasure import TombstoneGuard, erasure_routes
from crdt_server.edge.export import export_routes
from crdt_server.edge.openapi import openapi_document
from crdt_server.edge.problems import exception_handlers
from crdt_server.edge.ratelimit import HttpRateLimiter
from crdt_server.edge.routing import ApiRoute, starlette_routes
from crdt_server.edge.state import SERVER_STATE_KEY, Services
from crdt_server.edge.status import status_routes
from crdt_server.edge.upgrade import STATE_KEY, Gate
from crdt_server.edge.webapp import webapp_routes
from crdt_server.errors import CloseCode
from crdt_server.features import (
    Built,
    Feature,
    assembled,
    calendars,
    capabilities_of,
    conflicts,
    day,
    delays,
    emergencies,
    events,
    install_tables,
    integrations,
    invitations,
    notes,
    notifications,
    overview,
    payments,
    people,
    presence,
    projections,
    push,
    rsvp,
    runsheets,
    scheduler,
    signin,
    sms,
    tasks,
    threads,
    versions,
    webhooks,
    weddings,
)
from crdt_server.placement import ALONE, Placement
from crdt_server.settings import Settings, SettingsError
from crdt_server.storage import PostgresTimeouts, Store, store_for

__all__ = [
    "CORE_SCHEMAS",
    "FEATURES",
    "create_app",
    "features_of",
    "http_routes",
    "permission_matrix",
    "token_codec",
]

CORE_SCHEMAS = (
    QUARANTINE_SCHEMA,
    OPERATION_KEYS_SCHEMA,
    CLIENT_OWNERS_SCHEMA,
    ADOPTIONS_SCHEMA,
)
"""The tables the core keeps beside the features' (the data tools check for them too)."""

API_VERSION = "0.1.0"

log = logging.getLogger("crdt_server.app")


def token_codec(settings: Settings) -> TokenCodec:
    """The token codec the server uses: the configured secret (or the one kept in the data
    directory, created on first use) and the configured public key, if any."""
    algorithms = settings.algorithms
    secret = None
    if any(a.startswith("HS") for a in algorithms):
        secret = (
            settings.auth_secret.encode()
            if settings.auth_secret
            else load_or_create_secret(settings.data_dir)
        )
    public_key = None
    if settings.auth_public_key_file:
        public_key = Path(settings.auth_public_key_file).read_text()
    return TokenCodec(
        algorithms=algorithms,
        secret=secret,
        public_key=public_key,
        max_lifetime=settings.max_token_lifetime_seconds,
    )


class AdminEvents(Extension):
    """Applies the admin events other processes publish: revocation and deletion."""

    name = "admin-events"

    def __init__(
        self,
        revocations: Revocations,
        known: frozenset[str],
        registry: RoomRegistry,
        erasures: ErasureService,
    ) -> None:
        self._revocations = revocations
        self._known = known | ADMIN_MESSAGES
        self._registry = registry
        self.erasures = erasures
        """The server's erasure service (its tombstones and revocations load at start)."""

    async def start(self, core: Core) -> None:
        await self.erasures.start()

    async def close(self) -> None:
        await self.erasures.close()

    def on_bus_event(self, event: dict[str, Any]) -> None:
        registry = self._registry
        if (revoke := from_event(event, Revoke)) is not None:
            self._revocations.revoke(revoke.sub, revoke.wedding, revoke.at)
            registry.close_sessions(
                revoke.sub, revoke.wedding, CloseCode.TOKEN_EXPIRED, "session revoked"
            )
            registry.hooks.revoked(revoke.sub, revoke.wedding)
        elif (delete := from_event(event, Delete)) is not None:
            self.erasures.on_deleted(delete.wedding)
        elif (lift := from_event(event, Lift)) is not None:
            self.erasures.on_lifted(lift.wedding)
        elif event.get("type") not in self._known:
            log.error("ignoring an unknown admin event: %r", event)


FEATURES: tuple[Feature, ...] = assembled(
    (
        scheduler.FEATURE,
        events.FEATURE,
        signin.FEATURE,
        invitations.FEATURE,
        people.FEATURE,
        notifications.FEATURE,
        emergencies.FEATURE,
        threads.FEATURE,
        conflicts.FEATURE,
        notes.FEATURE,
        presence.FEATURE,
        versions.FEATURE,
        integrations.FEATURE,
        webhooks.FEATURE,
        projections.FEATURE,
        weddings.FEATURE,
        rsvp.FEATURE,
        payments.FEATURE,
        tasks.FEATURE,
        push.FEATURE,
        day.FEATURE,
        delays.FEATURE,
        runsheets.FEATURE,
        overview.FEATURE,
        sms.FEATURE,
        calendars.FEATURE,
    )
)
"""The features the server runs, in the order they are built (a feature comes after those
it needs: :func:`~crdt_server.features.assembled` checks it; see
:mod:`crdt_server.features`). The one list that names features."""

EVENT_TABLES = events.EVENT_TABLES
"""The events feature's part of a wedding's export and import (``crdt-server export`` and
``import``, ``GET /api/weddings/{id}/export``; the tools name no feature, and the CLI takes
what it needs of the features from here)."""


def features_of(settings: Settings) -> tuple[Feature, ...]:
    """The features ``settings`` run (``CRDT_SERVER_FEATURES``), in :data:`FEATURES` order;
    raises :class:`SettingsError` naming an unknown one."""
    spec = settings.features.strip()
    if spec == "all":
        return FEATURES
    if spec == "none":
        return ()
    names = {name.strip() for name in spec.split(",") if name.strip()}
    known = {feature.name for feature in FEATURES}
    unknown = sorted(names - known)
    if unknown or not names:
        raise SettingsError(
            f"features: unknown {', '.join(unknown) or '(empty)'}; all, none, or some of"
            f" {', '.join(sorted(known))}"
        )
    return tuple(feature for feature in FEATURES if feature.name in names)


def permission_matrix(
    settings: Settings, features: Sequence[Feature] = FEATURES
) -> PermissionMatrix:
    """The permission matrix the server runs: the operator's ``CRDT_SERVER_PERMISSIONS``
    (or the default matrix) with the capabilities ``features`` declare; a capability no
    feature of the list declares is an unknown capability (:class:`PermissionsError`)."""
    declared = capabilities_of(features)
    if settings.permissions:
        return PermissionMatrix.from_json(settings.permissions, declared)
    return PermissionMatrix(capabilities=declared)


def default_store(settings: Settings) -> Store:
    """PostgreSQL when ``database_url`` is set, else the embedded SQLite file."""
    return store_for(
        settings.database_url,
        settings.sqlite_path,
        busy_timeout=settings.sqlite_busy_timeout_seconds,
        synchronous="normal" if settings.sqlite_synchronous == "normal" else "full",
        read_connections=settings.sqlite_read_connections,
        commits=settings.sqlite_commits_on,
        postgres_timeouts=PostgresTimeouts(
            lock=settings.database_lock_timeout_seconds,
            answer=settings.database_answer_timeout_seconds,
            idle=settings.database_idle_timeout_seconds,
        ),
    )


async def _quarantine(store: Store, metrics: Metrics, slot: ApplySlot | None) -> Quarantine:
    """The quarantined clients, with those of the update the previous process never
    finished applying (its apply slot), which is logged."""
    interrupted = slot.previous() if slot is not None else None
    if interrupted is not None:
        metrics.apply_interrupted.inc()
        log.error(
            "the previous process ended while applying an update to %s from %r"
            " (Yjs clients %s), a stall or a crash: those clients are quarantined in"
            " that room until `crdt-server quarantine lift`",
            interrupted.room,
            interrupted.sub,
            ", ".join(map(str, interrupted.clients)),
        )
    quarantine = Quarantine(store, metrics)
    await quarantine.start(interrupted)
    return quarantine


def _bus_of(settings: Settings) -> Bus:
    """Redis with ``redis_url`` (a cluster), else this process alone."""
    if settings.redis_url:
        from crdt_server.cluster.redis_bus import RedisBus  # redis only in a cluster

        return RedisBus(settings.redis_url)
    return LocalBus()


def _warn_of(settings: Settings, matrix: PermissionMatrix) -> None:
    """Say what an operator may not have meant: documents their matrix does not name, and
    anonymous access."""
    for doc, roles in matrix.defaulted.items():
        log.warning(
            "CRDT_SERVER_PERMISSIONS does not name %r for %s: they get the default"
            " matrix's access to it (%s); name it to choose otherwise",
            doc,
            ", ".join(roles),
            ", ".join(f"{role} {matrix.access(role, doc).value}" for role in roles),
        )
    if settings.allow_anonymous:
        log.warning(
            "ANONYMOUS ACCESS IS ON: clients without a token may read and write every "
            "document. Use this only for local demos and benchmarks."
        )


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    authenticator: Authenticator | None = None,
    bus: Bus | None = None,
    extensions: Sequence[Extension] = (),
    features: Sequence[Feature] = FEATURES,
    apply_slot: Path | None = None,
    placement: Placement = ALONE,
) -> Starlette:
    """Build the server. Without a ``store``, the embedded SQLite store under ``data_dir``.

    ``features`` (by default every one, :data:`FEATURES`) bring their extensions, routes
    and tables; ``extensions`` are added after theirs, in order. ``apply_slot``: the file
    of this process's apply slot (:mod:`crdt_server.core.quarantine`; the command line
    gives one to each server process, whose loop watchdog may end it mid-apply).
    ``placement``: which weddings this process owns among its host's workers
    (:mod:`crdt_server.placement`; a single process owns them all).
    """
    server = _Server(
        settings, store, authenticator, bus, extensions, features, apply_slot, placement
    )
    return Starlette(
        routes=_routes(features),
        lifespan=server.lifespan,
        middleware=[Middleware(AccessMiddleware), Middleware(TombstoneGuard)],
        exception_handlers=exception_handlers(),  # type: ignore[arg-type]
    )


def _routes(features: Sequence[Feature]) -> list[BaseRoute]:
    """The HTTP API's routes (with the reference serving its OpenAPI document) and the
    WebSocket endpoints."""
    table = [*http_routes(features), *reference_routes(lambda: spec)]
    spec = openapi_document(table, version=API_VERSION)
    return [
        *starlette_routes(table),
        WebSocketRoute("/sync/{wedding_id}/{doc}", sync_endpoint),
        # The room URL over plain HTTP (426: it needs the upgrade); not an HTTP API operation.
        StarletteRoute(
            "/sync/{wedding_id}/{doc}",
            plain_http_endpoint,
            methods=["GET"],
            include_in_schema=False,
        ),
        WebSocketRoute("/sync/{rest:path}", not_found_endpoint),
        WebSocketRoute("/collab", collab_endpoint),
        WebSocketRoute("/collab/{wedding_id}", collab_endpoint),
    ]


@dataclass(frozen=True)
class _Opened:
    """What the lifespan opens before the features are built: the store, the apply slot
    and the quarantine, the rooms (with the hooks the extensions join), the weddings."""

    store: Store
    slot: ApplySlot | None
    quarantine: Quarantine
    hooks: Hooks
    registry: RoomRegistry
    weddings: WeddingService
    core: Core
    erasures: ErasureService
    revocations: Revocations
    codec: TokenCodec

    async def close(self) -> None:
        """Close it all: the extensions and the rooms first, the store last."""
        try:
            await self.hooks.close()
            await self.registry.close()
            await self.quarantine.close()
        finally:
            if self.slot is not None:
                self.slot.close()
            await self.store.close()


@dataclass(frozen=True)
class _Server:
    """:func:`create_app`'s arguments, and the lifespan they make: open the core, build the
    features' extensions, serve, close."""

    settings: Settings
    store: Store | None
    authenticator: Authenticator | None
    bus: Bus | None
    extensions: Sequence[Extension]
    features: Sequence[Feature]
    apply_slot: Path | None
    placement: Placement

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[dict[str, object]]:
        # A list whose features lack one they need stops the start before anything opens.
        assembled(self.features)
        opened = await self._open()
        built = await self._build(opened)
        known = frozenset(kind for feature in self.features for kind in feature.bus)
        opened.hooks.add(
            [
                AdminEvents(opened.revocations, known, opened.registry, opened.erasures),
                *built,
                *self.extensions,
            ]
        )
        state = self._services(opened)
        await opened.hooks.start(opened.core)
        await opened.registry.start()
        try:
            # The lifespan state reaches every request (crdt_server.edge.state) and uvicorn's
            # WebSocket protocol (crdt_server.wire.websocket).
            yield {STATE_KEY: state.gate, SERVER_STATE_KEY: state}
        finally:
            await opened.close()

    async def _open(self) -> _Opened:
        """Open the store and the core over it: the quarantine (with the clients of the
        update the previous process left unfinished), the Yjs clients' owners, the rooms,
        the weddings (their keys installed) and the erasures."""
        settings = self.settings
        # Kept as long as any token they cover may live (plus the iat clock skew).
        keep = settings.max_token_lifetime_seconds + CLOCK_SKEW
        revocations = Revocations(keep_seconds=keep)
        store = self.store or default_store(settings)
        await store.open()
        metrics = Metrics()
        slot = ApplySlot(self.apply_slot) if self.apply_slot is not None else None
        quarantine = await _quarantine(store, metrics, slot)
        clients = ClientIds(store, metrics)
        await clients.start()
        if slot is not None:
            slot.clear()  # only once the quarantine is stored
        bus = self.bus if self.bus is not None else _bus_of(settings)
        codec = token_codec(settings)
        # The core first, with hooks the extensions are added to once they are built.
        hooks = Hooks()
        registry = RoomRegistry(
            RoomServices(
                store,
                settings,
                bus,
                hooks=hooks,
                metrics=metrics,
                quarantine=quarantine,
                slot=slot,
                clients=clients,
            )
        )
        weddings = WeddingService(registry, store, WEDDINGS)
        await weddings.keys.install()
        return _Opened(
            store=store,
            slot=slot,
            quarantine=quarantine,
            hooks=hooks,
            registry=registry,
            weddings=weddings,
            core=Core(settings, store, registry, weddings, self.placement),
            erasures=ErasureService(registry, store, weddings, revocations, keep_revocations=keep),
            revocations=revocations,
            codec=codec,
        )

    async def _build(self, opened: _Opened) -> list[Extension]:
        """The features' extensions, built in order; a failed build closes what
        :meth:`_open` opened."""
        built = Built(opened.core, opened.revocations, self.features)
        try:
            # Every feature's tables before any build: a build may read them (a kept key),
            # and an extension's start only starts its background work.
            await install_tables(opened.store, self.features)
            for feature in self.features:
                await built.build(feature)
        except BaseException:  # a build that asks for a feature it does not declare
            await opened.quarantine.close()
            await opened.store.close()
            raise
        return built.extensions

    def _services(self, opened: _Opened) -> Services:
        """What every request may need: the permission matrix, the authenticator, the
        upgrade gate and its limits, the HTTP rate limits."""
        settings, features, registry = self.settings, self.features, opened.registry
        matrix = permission_matrix(settings, features)
        _warn_of(settings, matrix)
        authenticator = self.authenticator or TokenAuthenticator(
            opened.codec, matrix, opened.revocations, allow_anonymous=settings.allow_anonymous
        )
        gate = Gate(
            settings,
            registry,
            authenticator,
            upgrade_limiter=RateLimiter(
                settings.max_upgrades_per_second, 2 * settings.max_upgrades_per_second
            ),
            address_connections=ConnectionCounter(settings.max_connections_per_address),
            user_connections=ConnectionCounter(settings.max_connections_per_user),
            gone=opened.erasures.gone,
        )
        return Services(
            settings=settings,
            store=opened.store,
            registry=registry,
            token_codec=opened.codec,
            revocations=opened.revocations,
            authenticator=authenticator,
            gate=gate,
            weddings=opened.weddings,
            limiter=HttpRateLimiter(
                settings.rate_limits, emergency_per_hour=settings.rate_emergency_per_hour
            ),
            erasures=opened.erasures,
            permissions=matrix,
            hooks=opened.hooks,
            event_streams=ConnectionCounter(settings.max_event_streams_per_user),
            sections=tuple(section for feature in features for section in feature.export),
            event_tables=EVENT_TABLES if events.FEATURE in features else None,
        )


def http_routes(features: Sequence[Feature] = FEATURES) -> list[ApiRoute]:
    """The route table of the HTTP API: the core's routes and the features' (without the
    reference routes, which serve the document generated from the table)."""
    return [
        *status_routes(),
        *document_routes(),
        *admin_routes(),
        *erasure_routes(),
        *export_routes(),
        *webapp_routes(),
        *(route for feature in features for route in feature.routes()),
    ]
