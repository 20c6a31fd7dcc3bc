"""The one frozen settings object, and the only place that reads the environment.

Every field can be set by an environment variable ``CRDT_SERVER_<FIELD NAME IN CAPITALS>``
(command-line options of ``crdt-server serve`` win over the environment). :class:`Settings`
holds the core's settings; each feature declares its own as a *fragment*: a frozen
dataclass in its package, its fields documented and validated the same way, named in its
``Feature`` (``settings=``). :meth:`Settings.from_env` fills the fragments it is given (the
feature list's), and a feature reads its own with :meth:`Settings.fragment`. The settings
reference (``docs/reference/settings.md``) is generated from these classes, each field's
docstring its meaning (``scripts/docs_reference.py``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import Field, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

__all__ = [
    "ENV_PREFIX",
    "Settings",
    "SettingsError",
    "require_not_negative",
    "require_positive",
    "variables",
]

F = TypeVar("F")

ENV_PREFIX = "CRDT_SERVER_"


class SettingsError(ValueError):
    """A setting has a value of the wrong type or out of range."""


_POSITIVE = tuple(
    """
    event_retention_days rate_events_per_minute max_message_bytes max_update_items
    update_slice_structs max_awareness_state_bytes max_awareness_entries
    outbound_queue_bytes outbound_queue_messages max_uncommitted_bytes
    max_read_pause_seconds compact_after_updates token_ttl_seconds
    session_max_lifetime_seconds max_connections_per_user max_documents_per_socket
    max_event_streams_per_user max_upgrades_per_second max_document_bytes max_wedding_bytes
    max_updates_per_second max_awareness_per_second max_connections_per_address max_rooms
    max_concurrent_loads workers presence_timeout_seconds max_json_body_bytes
    handshake_timeout_seconds max_pending_handshakes_per_address body_timeout_seconds
    max_held_updates max_held_bytes max_token_lifetime_seconds handoff_timeout_seconds
    database_lock_timeout_seconds database_idle_timeout_seconds
    database_answer_timeout_seconds readiness_timeout_seconds
    """.split()
)
"""The settings that must be above 0."""
_NOT_NEGATIVE = tuple(
    """
    room_backlog_updates process_backlog_updates room_idle_seconds
    gc_full_collection_seconds presence_batch_seconds turn_budget_seconds
    close_timeout_seconds sqlite_busy_timeout_seconds sqlite_read_connections
    websocket_ping_seconds max_update_body_bytes rate_read_per_minute rate_write_per_minute
    rate_admin_per_minute rate_threads_per_minute rate_emergency_per_hour
    shutdown_timeout_seconds loop_stall_seconds
    """.split()
)
"""The settings that may be 0 (most: off) but not below."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    """Interface to listen on."""
    port: int = 8000
    """TCP port to listen on (0 picks a free one)."""
    data_dir: Path = field(default_factory=lambda: Path("data"))
    """Directory of the embedded SQLite store (``crdt.sqlite3``)."""
    log_level: str = "info"
    """Python logging level name."""
    log_format: str = "text"
    """``text`` (one line per event) or ``json`` (one JSON object per line)."""
    database_url: str = ""
    """PostgreSQL store shared by several hosts (``postgresql://user@host/db``); empty: the
    embedded SQLite file in ``DATA_DIR``."""
    redis_url: str = ""
    """Redis for several processes on one store (``redis://127.0.0.1:6379/0``); empty: one
    process, no bus."""
    database_lock_timeout_seconds: float = 5.0
    """How long a PostgreSQL commit waits for the write lock every process shares before
    it fails (``lock_timeout``)."""
    database_idle_timeout_seconds: float = 2.0
    """PostgreSQL ends a session of this server that sits in a transaction sending nothing
    for this long (``idle_in_transaction_session_timeout``): a host cut off from the
    database mid-commit stops the other hosts' writes for at most about this long. Above
    the event loop's longest legitimate turn."""
    database_answer_timeout_seconds: float = 6.0
    """A PostgreSQL read or write transaction (its wait for the lock included) not done
    within this is abandoned (its connection dropped): the commit fails, its rooms close
    their connections with 1011 so clients reconnect (through the proxy, to another
    server), and ``/readyz`` answers 503 until the store answers again. More than the
    lock timeout."""
    readiness_timeout_seconds: float = 2.0
    """``/readyz`` answers 503 (the store did not answer) if its check of the store takes
    longer than this."""
    workers: int = 1
    """Server processes (``crdt-server serve --workers N``); more than one needs Redis."""
    presence_timeout_seconds: float = 30.0
    """Presence relayed from another process that is not refreshed for this long is
    removed (clients refresh every 15 s; a process that died leaves no ghosts)."""

    allow_anonymous: bool = False
    """Let clients without a token read and write every room (local demos, benchmarks). Only
    on a loopback ``HOST`` unless ``ALLOW_ANONYMOUS_ON_NETWORK`` is set too; ``serve``
    prints a sign-in link per role of the demo wedding."""
    allow_anonymous_on_network: bool = False
    """Let ``ALLOW_ANONYMOUS`` serve a non-loopback ``HOST`` (anyone who reaches the port
    reads and writes every wedding); without it such a server refuses to start."""
    auth_secret: str = ""
    """HS256 secret for tokens; empty: one is generated into ``DATA_DIR/auth_secret``."""
    auth_public_key_file: str = ""
    """PEM public key for RS256/ES256 tokens (the server never needs the private key)."""
    auth_algorithms: str = ""
    """Accepted token algorithms, comma separated; empty: HS256, plus RS256 and ES256
    when a public key is configured."""
    admin_api_key: str = ""
    """Key for the admin API (sessions, revocation); empty: the admin API is disabled."""
    permissions: str = ""
    """Role x document matrix as JSON (``{"vendor": {"timeline": "read"}}``), each access one
    of ``write``, ``operate``, ``read``, ``none``; empty: the built-in default (see the
    permissions reference)."""
    allowed_origins: str = ""
    """Browser origins allowed to connect, comma separated; empty: any origin."""
    token_ttl_seconds: int = 3600
    """Lifetime of tokens minted by the sessions endpoint and ``crdt-server token``."""
    max_connections_per_user: int = 32
    """Concurrent connections of one authenticated user; more are refused with 429."""
    max_documents_per_socket: int = 32
    """Documents one Hocuspocus socket (``/collab``) may have attached at once; an Auth
    for one more is answered ``permissionDenied``. Each counts against
    ``max_connections_per_user`` like a ``/sync`` connection."""
    features: str = "all"
    """The features the server runs: ``all``, ``none`` (a sync server alone: rooms, the
    store, presence over awareness, the documents' HTTP routes, nothing derived from the
    documents), or feature names separated by commas (``events,webhooks``), run in their
    usual order; a feature that needs one left out stops the start. Unknown names stop it
    too."""
    app_transport: str = "collab"
    """How the planner app (``/app/``) syncs a wedding: ``collab``, one Hocuspocus socket
    (``/collab/{wedding_id}``) carrying all its documents, or ``sync``, one y-websocket
    socket per document (``/sync``). The app reads it from the wedding's access
    (``transport``); an app open before a change follows it at its next load."""
    max_event_streams_per_user: int = 16
    """Concurrent event streams (SSE) of one authenticated user in one process, like
    ``max_connections_per_user`` for WebSockets; more are refused with 429."""
    max_upgrades_per_second: float = 50.0
    """WebSocket upgrades per second from one address (burst: twice that); more get 429."""

    max_message_bytes: int = 8 * 1024 * 1024
    """Largest WebSocket message accepted; larger ones close the connection with 1009."""
    max_update_items: int = 160_000
    """Most structs and delete ranges one received update may hold (an update or sync step
    2 over a socket, the body of an HTTP ``update`` or ``sync``), counted from the counts it
    declares before its items are read; more close a ``/sync`` connection with 1009, close
    that document alone on ``/collab`` (a CLOSE whose reason starts with 1009) and are 413
    over HTTP. The default is 4x the largest message an honest client sends (the planner
    app's guest form adding 5,000 guests in one transaction: 40,000;
    ``tests/js/producers.mjs``)."""
    update_slice_structs: int = 1000
    """A received update of more structs than this is taken in as slices of this many, in
    order, each applied, committed and sent to the room before the next (the loop serves
    other rooms between them): one message costs another wedding the time of one slice,
    not of the whole. Answered (HTTP) once its last slice is committed; a slice refused
    leaves those before it committed. An update deleting more than this many entries (a
    client's message removing thousands of guests, a restore) is cut too, in parts of at
    most this many deleted map items (a deleted text of any length is one), each echoed
    before the next: a client confirms a deleted range by the union of the echoed ranges."""
    max_document_bytes: int = 64 * 1024 * 1024
    """Largest a document's stored log may grow (an upper bound of its encoded size);
    an update past it closes the connection with 1009."""
    max_wedding_bytes: int = 128 * 1024 * 1024
    """The storage quota of one wedding: the most its documents' stored logs may hold
    together (each also under ``max_document_bytes``); an update past it is refused like
    one past the per-document limit (1009 on a socket, 413 over HTTP)."""
    max_updates_per_second: float = 200.0
    """Updates one connection may send per second (burst: twice that); more close it with
    1008."""
    max_awareness_per_second: float = 30.0
    """Awareness messages one connection may send per second (burst: twice that); more
    close it with 1008."""
    max_connections_per_address: int = 512
    """Concurrent connections from one client address; more are refused with 429."""
    max_rooms: int = 10_000
    """Rooms loaded in this process; a connection to one more is closed with 1013."""
    max_concurrent_loads: int = 8
    """Rooms loaded from the store at the same time; further joins wait their turn."""
    max_awareness_state_bytes: int = 16 * 1024
    """Largest awareness state (JSON text) of one client."""
    max_awareness_entries: int = 64
    """Most awareness entries in one awareness message."""
    outbound_queue_bytes: int = 4 * 1024 * 1024
    """Bytes queued for one connection before it is closed with 1013 as a slow consumer."""
    outbound_queue_messages: int = 4096
    """Messages queued for one connection before it is closed with 1013 as a slow consumer."""
    max_uncommitted_bytes: int = 16 * 1024 * 1024
    """Bytes of a room applied but not yet committed before its writers wait for the store."""
    room_backlog_updates: int = 64
    """Updates one room may have accepted and not committed yet. A connection that sends an
    update while its room is past it is not read again until the room's commits bring it
    back under (TCP carries the pressure to the writer); on a Hocuspocus socket the update
    is not applied, pulled later and answered then. 0: no bound."""
    process_backlog_updates: int = 512
    """Updates all the rooms of the process may have accepted and not committed. Past it,
    each room keeps its fair share (this bound divided among the rooms with a backlog, at
    least one update), and a writer to a room over its share waits as above: one busy
    wedding never delays a quiet one. About half a second of what the process commits
    keeps the echo of what it accepts under a second. 0: no bound."""
    max_read_pause_seconds: float = 10.0
    """Longest a connection's reading stays paused by its room's backlog; one still paused
    then (a client that keeps flooding) is closed with 1013 and resyncs when it comes
    back."""
    compact_after_updates: int = 1000
    """A room's log is folded into one snapshot once it has this many rows."""
    room_idle_seconds: float = 10.0
    """How long a room without connections stays loaded (after its last flush)."""
    websocket_ping_seconds: float = 20.0
    """A WebSocket peer silent this long is pinged, and dropped if it stays silent as long
    again (uvicorn's ``ws_ping_interval`` and ``ws_ping_timeout``); 0 turns pings off."""
    turn_budget_seconds: float = 0.02
    """Under overload, how long one turn of the event loop may spend on the peers' updates
    before the rest wait for later turns, connections taking turns: new connections,
    commits and echoes then wait one short turn, not one that lasts seconds. 0: no limit."""
    presence_batch_seconds: float = 0.01
    """Presence arriving in a room within this long after a relay goes out together, one
    message with each client's newest state (the first change after a quiet spell goes out
    at once); 0: every change at once."""
    gc_full_collection_seconds: float = 3600.0
    """How often the garbage collector walks every object. In between, what survives two
    collections is frozen, so no collection walks the open connections (one full walk
    pauses the server about 33 ms per 1,000 connections); reference counting still frees
    nearly everything at once. 0: CPython's own schedule (a full walk whenever the
    long-lived objects have grown by a quarter)."""
    close_timeout_seconds: float = 5.0
    """How long a close handshake may take before the connection is dropped."""
    sqlite_busy_timeout_seconds: float = 5.0
    """How long SQLite waits for a lock before a commit fails."""
    sqlite_synchronous: str = "full"
    """``full``: every commit is fsynced before it is acknowledged, so it survives power
    loss. ``normal``: it is in the operating system before it is acknowledged, so it
    survives the server being killed; a power loss or kernel crash may lose the last
    commits (never the file)."""
    sqlite_commits: str = "auto"
    """Where the SQLite store runs its commits of updates and feature rows: ``thread``: on
    the writer thread, leader/follower (a commit with none in flight is handed to the
    thread at once; the updates that arrive during its fsync share the next), so the event
    loop never waits for an fsync; ``auto`` (the default): the same, except past
    saturation, while a whole shared transaction's worth waits behind the one being
    committed: then on the loop's thread (behind a busy loop each statement on the thread
    waits for the interpreter, and commits fell seconds behind); ``loop``: always on the
    event loop's own thread (no hop to the thread and back; every room of the process
    waits for each commit's fsync: only for a fast local disk and one process).
    Compactions, deletions and checkpoints always run on the writer thread."""
    sqlite_read_connections: int = 0
    """Reads of the SQLite store that run at once (room loads, connects, JSON reads), each
    on a read-only connection of its own; further reads wait their turn. Writes keep their
    one writer. 0: one more than the usable cores, at most 4."""
    event_retention_days: float = 90.0
    """Domain events older than this are deleted by a periodic sweep (idle weddings too)."""
    rate_events_per_minute: int = 120
    """Custom events one subject may post per minute to one wedding (``emergency`` from the
    couple or planner is never limited); more get 429 with ``Retry-After``."""
    rate_emergency_per_hour: int = 10
    """Requests of ``emergency`` priority (custom events, thread messages) one subject other
    than the couple or planner may make an hour, in bursts of up to that many: a budget of
    its own, so the general limits never refuse an emergency (the couple's and planner's
    are never limited); more get 429 with ``Retry-After``; 0: unlimited. Per process, as
    every rate limit: under ``--workers N`` a subject may get up to N times as many."""
    rate_threads_per_minute: int = 120
    """Thread writes (new threads, messages, edits, reactions, read marks) one subject may
    make a minute; 0: unlimited. ``emergency`` from the couple or planner is never limited."""
    public_url: str = ""
    """The server's address as clients reach it (``https://plan.example.com``, behind a TLS
    proxy); every URL the server hands out starts from it. Empty: a link sent out (an
    email's) starts from the address the server listens on, never a request's ``Host``; a
    link in an answer from the request's host, and on a network address the server warns
    at start and those answers carry ``public_url_missing: true``."""
    max_json_body_bytes: int = 1024 * 1024
    """Largest JSON body of an HTTP request (sessions, revocation, operations); larger is
    refused with 413 while it is read."""
    max_update_body_bytes: int = 0
    """Largest Yjs update body of an HTTP request (``update``, binary ``sync``; base64 JSON
    sync may be a third larger); 0: ``MAX_MESSAGE_BYTES``."""
    rate_read_per_minute: int = 1200
    """HTTP reads (documents, history, presence, conflicts) one subject (token ``sub``, else
    client address) may make a minute, in bursts of up to that many; 0: unlimited."""
    rate_write_per_minute: int = 600
    """HTTP writes (update, sync, operations) one subject may make a minute; 0: unlimited.
    ``emergency`` requests from the couple or planner are never limited."""
    rate_admin_per_minute: int = 600
    """Admin API calls one client address may make a minute; 0: unlimited."""
    trusted_proxies: str = ""
    """Addresses or networks (comma separated) of reverse proxies whose
    ``X-Forwarded-For`` is believed, on HTTP and WebSocket alike; empty: none (the peer
    address is the client). uvicorn's own default (trust 127.0.0.1) is not used."""
    shutdown_timeout_seconds: float = 30.0
    """After SIGTERM or SIGINT the process exits within this many seconds, whatever is
    stuck (every acknowledged update is already committed)."""
    loop_stall_seconds: float = 10.0
    """The loop watchdog: a process whose event loop does not turn for this long (an
    update or a reader that never returns) writes every thread's stack to the log and ends
    by SIGALRM, so the supervisor or service manager starts it again, and the update being
    applied is quarantined. At least 5x the longest legitimate turn measured (a cold load
    or compaction of the largest benchmark document, a wedding export: see the
    deployment guide). 0 turns the watchdog off; otherwise at least 1."""
    handoff_timeout_seconds: float = 2.0
    """With ``--workers``: how long a worker that handed a connection (or passed an HTTP
    request) to its wedding's owner waits for the owner to take it. A hand-off or request
    the owner has not acknowledged by then (it is stopped, or stuck in a long turn) is
    served by the worker that accepted it (503 if that one is stopping), and the owner
    closes it unread when it gets to it. The
    owner takes a hand-off within milliseconds when its loop turns; longer than the
    longest legitimate loop turn, shorter than a client's patience."""
    handshake_timeout_seconds: float = 10.0
    """An HTTP request head (a WebSocket upgrade included) must arrive whole within this;
    a connection still sending it is dropped (slowloris)."""
    max_pending_handshakes_per_address: int = 512
    """Connections from one address whose request head, or body, is unfinished; more are
    dropped as they are made."""
    body_timeout_seconds: float = 30.0
    """A request body must arrive within this, plus one second per KiB received (at least
    1 KiB/s after the first seconds); a connection still sending it is dropped."""
    max_held_updates: int = 1000
    """Updates one room may hold while they wait on content it lacks; one more closes its
    sender with 1013."""
    max_held_bytes: int = 4 * 1024 * 1024
    """Bytes of updates one room may hold while they wait on content it lacks; past it the
    sender is closed with 1013."""
    max_token_lifetime_seconds: int = 30 * 24 * 3600
    """Longest a token may live (``exp - iat``); a token without both, or living longer,
    is refused with 401. Revocations are kept at least this long."""
    session_max_lifetime_seconds: int = 604800
    """Longest a session may be kept alive by ``POST /api/token/refresh``, counted from the
    first token's ``iat``: after that the person must sign in again."""

    fragments: tuple[object, ...] = ()
    """The features' settings fragments (no variable of its own: each fragment's fields are
    the variables); a fragment left out reads as its defaults (:meth:`fragment`)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port {self.port} out of range")
        require_positive(self, *_POSITIVE)
        require_not_negative(self, *_NOT_NEGATIVE)
        if self.database_answer_timeout_seconds <= self.database_lock_timeout_seconds:
            raise SettingsError("database_answer_timeout_seconds must exceed the lock timeout")
        if 0 < self.loop_stall_seconds < 1:
            raise SettingsError("loop_stall_seconds must be 0 (off) or at least 1")
        variables(type(f) for f in self.fragments)  # one of each, no name taken twice
        self._check_choices()

    def _check_choices(self) -> None:
        """Words from a fixed list, and settings that only make sense together."""
        if self.sqlite_synchronous not in ("full", "normal"):
            raise SettingsError("sqlite_synchronous must be full or normal")
        if self.sqlite_commits not in ("auto", "loop", "thread"):
            raise SettingsError("sqlite_commits must be auto, loop or thread")
        if self.log_format not in ("text", "json"):
            raise SettingsError("log_format must be text or json")
        if self.app_transport not in ("collab", "sync"):
            raise SettingsError("app_transport must be collab or sync")
        if (
            self.allow_anonymous
            and not self.allow_anonymous_on_network
            and not is_loopback(self.host)
        ):
            raise SettingsError(
                f"--allow-anonymous is for a local demo: it lets anyone who reaches "
                f"{self.host} read and write every wedding; listen on 127.0.0.1, or add "
                f"--allow-anonymous-on-network if that is what you mean"
            )
        if self.workers > 1 and not self.redis_url:
            raise SettingsError("several workers need a Redis bus: set CRDT_SERVER_REDIS_URL")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError("public_url must start with http:// or https://")
        if self.token_ttl_seconds > self.max_token_lifetime_seconds:
            raise SettingsError("token_ttl_seconds may not exceed max_token_lifetime_seconds")
        if self.auth_secret and len(self.auth_secret.encode()) < 32:
            raise SettingsError("auth_secret must be at least 32 bytes (RFC 7518, HS256)")

    def fragment(self, kind: type[F]) -> F:
        """The settings fragment ``kind`` (a feature's), as built from the environment, or
        its defaults when these settings were built without it."""
        for value in self.fragments:
            if isinstance(value, kind):
                return value
        found = _DEFAULTS.get(kind)
        if found is None:
            found = _DEFAULTS[kind] = kind()
        return cast(F, found)

    def environment(self) -> dict[str, str]:
        """Every setting, the fragments' included, as the ``CRDT_SERVER_*`` variables that
        build these settings again (``serve --workers`` hands them to its workers)."""
        return {
            name: str(getattr(self if owner is Settings else self.fragment(owner), f.name))
            for name, (owner, f) in variables(type(v) for v in self.fragments).items()
        }

    @property
    def update_body_limit(self) -> int:
        """The largest update body of an HTTP request, in bytes."""
        return self.max_update_body_bytes or self.max_message_bytes

    @property
    def rate_limits(self) -> dict[str, int]:
        """Requests a minute per route family (``CRDT_SERVER_RATE_<FAMILY>_PER_MINUTE``)."""
        return {
            "read": self.rate_read_per_minute,
            "write": self.rate_write_per_minute,
            "admin": self.rate_admin_per_minute,
            "events": self.rate_events_per_minute,
            "threads": self.rate_threads_per_minute,
        }

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "crdt.sqlite3"

    @property
    def sqlite_commits_on(self) -> Literal["auto", "loop", "thread"]:
        """:attr:`sqlite_commits`, checked."""
        return cast(Literal["auto", "loop", "thread"], self.sqlite_commits)

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )

    @property
    def algorithms(self) -> tuple[str, ...]:
        if self.auth_algorithms.strip():
            return tuple(a.strip() for a in self.auth_algorithms.split(",") if a.strip())
        if self.auth_public_key_file:
            return ("HS256", "RS256", "ES256")
        return ("HS256",)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        fragments: Iterable[type[Any]] = (),
        **overrides: Any,
    ) -> Settings:
        """Build settings from ``CRDT_SERVER_*`` variables, then apply ``overrides``.

        ``fragments`` are the features' settings types to fill too (``crdt_server.cli``
        passes those of ``crdt_server.app.FEATURES``); a variable of a fragment not given
        is not read. ``overrides`` name fields of the core or of those fragments; those whose
        value is ``None`` are ignored, so unset CLI options fall through.
        """
        env = os.environ if environ is None else environ
        kinds = tuple(fragments)
        known = variables(kinds)
        values: dict[type[Any], dict[str, Any]] = {kind: {} for kind in (cls, *kinds)}
        for old, (kept, instead) in WITHDRAWN.items():
            raw = env.get(ENV_PREFIX + old)
            if raw is not None and raw.strip().lower() not in kept:
                raise SettingsError(f"{ENV_PREFIX}{old} is withdrawn: {instead}")
        for name, (owner, f) in known.items():
            raw = env.get(name)
            if raw is not None:
                values[owner][f.name] = _parse(f.name, f.type, raw)
        for key, value in overrides.items():
            if value is None:
                continue
            found = known.get(ENV_PREFIX + key.upper())
            if found is None or found[1].name != key:
                raise TypeError(f"no setting named {key!r}")
            values[found[0]][key] = value
        built = tuple(kind(**values[kind]) for kind in kinds)
        return cls(**values[cls], fragments=built)


def variables(fragments: Iterable[type[Any]] = ()) -> dict[str, tuple[type[Any], Field[Any]]]:
    """Every setting's variable (``CRDT_SERVER_<FIELD>``): the core's, then each fragment's,
    with the class that holds it and its field. Refuses (:class:`SettingsError`) a fragment
    that is not a dataclass, one given twice, and a name two of them use."""
    found: dict[str, tuple[type[Any], Field[Any]]] = {}
    seen: set[type[Any]] = set()
    for kind in (Settings, *fragments):
        if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)) or kind in seen:
            raise SettingsError(f"{kind!r} is not a settings fragment, or is given twice")
        seen.add(kind)
        for f in dataclasses.fields(kind):
            if kind is Settings and f.name == "fragments":
                continue
            name = ENV_PREFIX + f.name.upper()
            if name in found:
                raise SettingsError(f"{name} is a setting of both {found[name][0]} and {kind}")
            found[name] = (kind, f)
    return found


def require_positive(settings: object, *names: str) -> None:
    """Refuse (:class:`SettingsError`) a field of ``settings`` among ``names`` that is 0 or
    less (fragments validate their fields with it too)."""
    for name in names:
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be positive")


def require_not_negative(settings: object, *names: str) -> None:
    """Refuse (:class:`SettingsError`) a field of ``settings`` among ``names`` below 0."""
    for name in names:
        if getattr(settings, name) < 0:
            raise SettingsError(f"{name} must not be negative")


_DEFAULTS: dict[type[Any], object] = {}
"""Each fragment's defaults, built once (what :meth:`Settings.fragment` gives for a fragment
the settings were built without)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


WITHDRAWN: dict[str, tuple[frozenset[str], str]] = {
    "WEBSOCKET_STACK": (
        frozenset({"native"}),
        "the native stack (crdt_server.wire.websocket) serves every connection; unset it",
    ),
    "WEBSOCKET_COMPRESSION": (
        frozenset({"0", "false", "no", "off"}),
        "the native stack (crdt_server.wire.websocket) serves every connection and offers"
        " no permessage-deflate; unset it",
    ),
    "TOKEN_MAX_LIFETIME_SECONDS": (
        frozenset(),
        f"use {ENV_PREFIX}SESSION_MAX_LIFETIME_SECONDS",
    ),
}
"""Variables that are no longer read (without the prefix): the values that meant the old
default, still accepted, and what replaced them. Any other value stops the start with one
line, so an operator's setting is never ignored in silence."""


def _parse(name: str, kind: Any, raw: str) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from exc
