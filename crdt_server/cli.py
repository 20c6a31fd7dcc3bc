"""The ``crdt-server`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import typing
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType
from urllib.parse import unquote_plus

import uvicorn
from starlette.applications import Starlette

from crdt_server.app import CORE_SCHEMAS, FEATURES, create_app, token_codec
from crdt_server.auth.permissions import ROLES, PermissionMatrix
from crdt_server.auth.tokens import SECRET_FILE, TokenError, load_or_create_secret
from crdt_server.core.quarantine import slot_path
from crdt_server.core.watchdog import LoopWatchdog, tick_seconds
from crdt_server.edge.demo import with_demo
from crdt_server.edge.supervisor import Supervisor
from crdt_server.edge.upgrade import STATE_KEY as GATE_KEY
from crdt_server.edge.upgrade import Gate
from crdt_server.features import Command, Feature, commands_of, fragments_of
from crdt_server.gcpolicy import SurvivorFreezer, freeze_start_up
from crdt_server.rlimits import raise_open_files_limit
from crdt_server.settings import ENV_PREFIX, Settings, SettingsError
from crdt_server.tools import commands as data_commands
from crdt_server.tools.backup import repair_modes
from crdt_server.wire.affinity import STATE_KEY as AFFINITY_KEY
from crdt_server.wire.affinity import Affinity, make_run_dir, refuse_stopping
from crdt_server.wire.http_head import head_deadline_protocol
from crdt_server.wire.uvicorn_private import app_state, connection_factory, keep_task
from crdt_server.wire.websocket import SyncWebSocketProtocol

__all__ = ["main", "redact_tokens"]

_SECRET_NAMES = frozenset({"token", "access_token"})
# A name=value pair as it appears in a URL or a query string, the "=" possibly
# percent-encoded; the name is judged after percent-decoding (see _secret_name).
_PAIR = re.compile(r"(?P<name>[^\s?&;=\"'<>]+)(?P<eq>=|%3[dD])(?P<value>[^\s&;\"'<>]*)")


def _secret_name(raw: str) -> bool:
    """Whether a query parameter name, once decoded as a server would decode it (repeatedly,
    so that ``%2574oken`` counts too), names a token."""
    name = raw
    for _ in range(4):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    # A decoded name may carry the separator it was hidden behind (%3Ftoken, %26token).
    last = re.split(r"[?&;]", name)[-1]
    return last.strip().lower() in _SECRET_NAMES


def redact_tokens(message: str) -> str:
    """``message`` with the value of every token parameter replaced by ``[redacted]``."""
    if "=" not in message and "%3d" not in message.lower():
        return message
    return _PAIR.sub(_redact_pair, message)


def _redact_pair(match: re.Match[str]) -> str:
    value = match["value"]
    # A value may hide a whole encoded query (x=1%26token%3D...): judge it decoded too.
    hidden = "%" in value and redact_tokens(unquote_plus(value)) != unquote_plus(value)
    if _secret_name(match["name"]) or hidden:
        return f"{match['name']}{match['eq']}[redacted]"
    return match[0]


class RedactTokens(logging.Filter):
    """Query tokens never reach a log line, whichever library logs the URL, however the
    parameter's name is percent-encoded."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the error, if any);
    an access log line adds its fields (method, route, status, duration_ms, request_id)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "http", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # The filter runs before the formatter, so JSON lines are redacted too.
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class CliError(Exception):
    """A command refused: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``crdt-server token: error: ...``), exit 2.

    Subcommand parsers are of the same class (``add_subparsers`` uses ``type(self)``).
    """

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _version() -> str:
    try:
        return package_version("crdt-server")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number of seconds")
    return number


def _parser(features: Sequence[Feature] = FEATURES) -> argparse.ArgumentParser:
    """``crdt-server``'s arguments: the core's commands, the data commands and the
    subcommands of ``features``."""
    parser = _Parser(prog="crdt-server", description=__doc__)
    parser.add_argument("--version", action="version", version=f"crdt-server {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sync server")
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--data-dir", type=Path, help="directory of the SQLite store")
    serve.add_argument("--log-level", help="debug, info, warning or error")
    serve.add_argument("--workers", type=int, help="server processes (more than one needs Redis)")
    serve.add_argument("--redis-url", help="Redis bus for several processes, redis://HOST:PORT/DB")
    serve.add_argument(
        "--allow-anonymous",
        action="store_true",
        default=None,
        help="let clients without a token read and write, and print a sign-in link per "
        "role (a local demo: on a loopback --host only)",
    )
    serve.add_argument(
        "--allow-anonymous-on-network",
        action="store_true",
        default=None,
        help="let --allow-anonymous serve a non-loopback --host (anyone reaching it may "
        "read and write every wedding)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed the sample wedding 'demo' and print a sign-in link per role (ROLE URL)",
    )
    token = sub.add_parser("token", help="mint a token signed with the server's secret")
    token.add_argument(
        "--wedding",
        required=True,
        action="append",
        type=data_commands.wedding_id,
        help="wedding id (repeatable)",
    )
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--name", help="display name (default: the user id)")
    token.add_argument("--ttl", type=_positive, help="lifetime in seconds (default 3600)")
    token.add_argument("--email", help="email address (the member directory keeps it)")
    token.add_argument(
        "--data-dir", type=Path, help="data directory holding the secret (default: as serve)"
    )
    token.add_argument(
        "--create-secret",
        action="store_true",
        help="create DATA_DIR/auth_secret if it does not exist yet (a server started later "
        "with this data directory uses it)",
    )
    data_commands.add_commands(sub)
    for command in commands_of(features):
        command.arguments(sub.add_parser(command.name, help=command.help))
    return parser


FRAGMENTS = fragments_of(FEATURES)
"""The settings fragments of the features the server runs (``Settings.from_env`` fills
them)."""
SCHEMAS = (*CORE_SCHEMAS, *(schema for feature in FEATURES for schema in feature.schemas))
"""The core's and every feature's tables: what ``restore`` and ``check`` expect, whose
versions a store must not hold newer than (``serve`` and every command that opens a store)."""


def tune_gc(settings: Settings) -> None:
    """The garbage collector of a server process (crdt_server/gcpolicy.py): what is loaded
    by now is frozen out of every later collection, and so is whatever survives two
    collections, with a full collection every ``gc_full_collection_seconds``; 0 keeps
    CPython's own schedule after start-up."""
    if settings.gc_full_collection_seconds > 0:
        SurvivorFreezer(settings.gc_full_collection_seconds).install()
    else:
        freeze_start_up()


def app_from_env(worker: int | None = None) -> Starlette:
    """The app of one worker process (``--workers N``): settings come from the environment,
    where ``serve`` put its command-line options; ``worker``, its index, names its apply
    slot (:mod:`crdt_server.core.quarantine`)."""
    settings = Settings.from_env(fragments=FRAGMENTS)
    configure_logging(settings.log_level, settings.log_format)
    head_deadline_protocol(
        settings.handshake_timeout_seconds,
        settings.max_pending_handshakes_per_address,
        settings.body_timeout_seconds,
    )
    app = create_app(
        settings, apply_slot=None if worker is None else slot_path(settings.data_dir, worker)
    )
    tune_gc(settings)
    return app


class StartupError(Exception):
    """The server could not start; the message is the one line printed on stderr."""


def check_startup(settings: Settings) -> None:
    """Everything that can be wrong with the settings, found before anything listens: a
    bad setting gives one line on stderr and a non-zero exit, never a half-started server."""
    if settings.permissions:
        PermissionMatrix.from_json(settings.permissions)
    token_codec(settings)  # the secret or public key can be read
    parse_trusted_proxies(settings.trusted_proxies)


def parse_trusted_proxies(spec: str) -> list[str]:
    """The operator's ``TRUSTED_PROXIES``: each an IP address or network."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise SettingsError(
                f"{ENV_PREFIX}TRUSTED_PROXIES: {item!r} is not an IP address or network"
            ) from None
    return items


def private_data_dir(path: Path) -> list[str]:
    """The data directory and everything created in it are the server's alone: the
    directory is 0700 and, through the process umask, every file (the SQLite file, its
    -wal and -shm, the auth secret) is 0600. Files found with other modes (copied in, made
    by another tool) are repaired; returns what was, for one log line."""
    os.umask(0o077)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return repair_modes(path)


class _Server(uvicorn.Server):
    """uvicorn's server that says it listens only once the app has started, that ends
    the process within ``shutdown_timeout`` of a stop signal, whatever is stuck, and whose
    loop watchdog ends it when its event loop stops turning for ``loop_stall`` seconds
    (:mod:`crdt_server.core.watchdog`; 0: off)."""

    def __init__(
        self,
        config: uvicorn.Config,
        *,
        announce: str,
        shutdown_timeout: float,
        loop_stall: float = 0.0,
        heartbeat_fd: int | None = None,
    ) -> None:
        super().__init__(config)
        self._announce = announce
        self._shutdown_timeout = shutdown_timeout
        self._watchdog: threading.Timer | None = None
        self._loop_stall = loop_stall
        self._heartbeat_fd = heartbeat_fd
        self.loop_watchdog: LoopWatchdog | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and not self.should_exit:
            if self._loop_stall > 0:
                gate = app_state(self).get(GATE_KEY)
                metrics = gate.registry.metrics if isinstance(gate, Gate) else None
                self.loop_watchdog = LoopWatchdog(self._loop_stall, metrics, self._heartbeat_fd)
                self.loop_watchdog.start(asyncio.get_running_loop())
            # Tests and scripts read this line to learn the port when --port 0 was given.
            if self._announce:
                print(self._announce, flush=True)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # A graceful stop may take longer than the stall threshold (rooms flushing): the
        # shutdown timer above bounds it instead.
        if self.loop_watchdog is not None:
            self.loop_watchdog.stop()
            self.loop_watchdog = None
        await super().shutdown(sockets=sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._watchdog is None:
            self._watchdog = threading.Timer(self._shutdown_timeout, _give_up, (sig,))
            self._watchdog.daemon = True
            self._watchdog.start()


def _give_up(sig: int) -> None:
    """The watchdog: graceful shutdown took too long (a store or peer that hangs)."""
    print(
        f"crdt-server: shutdown did not finish in time after signal {sig}; exiting",
        file=sys.stderr,
        flush=True,
    )
    os._exit(1)


def serve(settings: Settings, *, demo: bool = False) -> None:
    configure_logging(settings.log_level, settings.log_format)
    if not settings.database_url:
        repaired = private_data_dir(settings.data_dir)
        if repaired:
            logging.getLogger("crdt_server.cli").warning(
                "repaired file modes in the data directory: %s", ", ".join(repaired)
            )
    check_startup(settings)
    # A store this release cannot serve (a newer release's, a garbage schema version) is
    # one line and exit 2 here, before anything listens, not a traceback from the app's
    # start; and never a supervisor restarting workers that cannot start.
    data_commands.refuse_unreadable_store(settings, SCHEMAS, missing_ok=True)
    # Workers inherit the raised limit.
    raise_open_files_limit()
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    host, port = sock.getsockname()[:2]
    announce = f"crdt-server listening on http://{host}:{port}"
    if settings.workers > 1:
        # Every worker builds its own app from the environment and inherits the socket.
        os.environ.update(settings.environment())
        sock.listen(2048)
        print(announce, flush=True)
        run_dir = make_run_dir()
        Supervisor(
            partial(_worker_argv, count=settings.workers, run_dir=run_dir),
            settings.workers,
            sock,
            run_dir=run_dir,
            shutdown_timeout=settings.shutdown_timeout_seconds + 5,
            # The worker's own watchdog ends it at loop_stall_seconds; this catches what it
            # cannot (a SIGSTOPped worker runs no handler).
            heartbeat_seconds=(
                settings.loop_stall_seconds + 2 * tick_seconds(settings.loop_stall_seconds)
                if settings.loop_stall_seconds > 0
                else 0.0
            ),
        ).run()
        return
    app = create_app(settings, apply_slot=slot_path(settings.data_dir, None))
    if demo or settings.allow_anonymous:
        # Links start from CRDT_SERVER_PUBLIC_URL when set (behind a TLS proxy), as every
        # link the server hands out does (edge/links.py).
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        local = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
        # --allow-anonymous alone lets a person in too: the links, without seeding.
        with_demo(app, settings, settings.public_url.rstrip("/") or local, seed=demo)
    tune_gc(settings)
    config = uvicorn_config(settings, app)
    server = _Server(
        config,
        announce=announce,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        loop_stall=settings.loop_stall_seconds,
    )
    # uvicorn handles SIGTERM/SIGINT (graceful shutdown: sockets closed with 1012, rooms
    # flushed) and then re-raises the signal to the handler that was installed before it.
    # A no-op handler there makes a graceful stop exit 0 instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_graceful_shutdown)
    try:
        server.run(sockets=[sock])
    except SystemExit as exc:
        # uvicorn exits with 3 when the app's startup failed (it has logged why).
        raise StartupError("the application failed to start (see the log above)") from exc
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
    if not server.started:
        raise StartupError("the application failed to start (see the log above)")


def uvicorn_config(settings: Settings, app: Starlette | str) -> uvicorn.Config:
    """uvicorn's configuration of one server process (the single one, or a worker)."""
    proxies = parse_trusted_proxies(settings.trusted_proxies)
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        http=head_deadline_protocol(
            settings.handshake_timeout_seconds,
            settings.max_pending_handshakes_per_address,
            settings.body_timeout_seconds,
        ),
        ws=SyncWebSocketProtocol,
        ws_max_size=settings.max_message_bytes,
        # Never offered: uvicorn's own protocol, which serves upgrades of other paths, would
        # offer it by default.
        ws_per_message_deflate=False,
        ws_ping_interval=settings.websocket_ping_seconds or None,
        ws_ping_timeout=settings.websocket_ping_seconds or None,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.close_timeout_seconds * 2)),
        # uvicorn trusts X-Forwarded-For from 127.0.0.1 unless told otherwise; here only
        # the operator's list is trusted, and none by default.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
    )


def _worker_argv(index: int, fd: int, heartbeat: int, *, count: int, run_dir: Path) -> list[str]:
    """The command line of worker ``index`` (see :func:`worker_main`)."""
    return [
        sys.executable,
        "-c",
        "import sys; from crdt_server.cli import worker_main; sys.exit(worker_main(sys.argv[1:]))",
        f"--index={index}",
        f"--count={count}",
        f"--fd={fd}",
        f"--heartbeat-fd={heartbeat}",
        f"--run-dir={run_dir}",
    ]


class _WorkerServer(_Server):
    """A worker's server: it takes connections handed over by the other workers once its
    app has started, and stops taking them when it stops."""

    def __init__(
        self,
        config: uvicorn.Config,
        affinity: Affinity,
        *,
        shutdown_timeout: float,
        loop_stall: float = 0.0,
        heartbeat_fd: int | None = None,
    ):
        super().__init__(
            config,
            announce="",
            shutdown_timeout=shutdown_timeout,
            loop_stall=loop_stall,
            heartbeat_fd=heartbeat_fd,
        )
        self._affinity = affinity

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        affinity = self._affinity
        app_state(self)[AFFINITY_KEY] = affinity
        await super().startup(sockets=sockets)
        if not self.started or self.should_exit:
            return
        gate = app_state(self).get(GATE_KEY)
        if not isinstance(gate, Gate):
            return  # an app without the sync gate: nothing to hand over
        gate.registry.metrics.set_worker(affinity.index)
        adopted = gate.registry.metrics.adopted
        create = connection_factory(self)
        loop = asyncio.get_running_loop()

        taken_back = gate.registry.metrics.handoffs_taken_back

        def serve(sock: socket.socket, head: bytes) -> None:
            task = loop.create_task(_adopt(loop, sock, lambda: affinity.feed(create(), head)))
            keep_task(self, task)

        def adopt(sock: socket.socket, head: bytes) -> None:
            if self.should_exit:
                refuse_stopping(sock)
                return
            adopted.inc()
            serve(sock, head)

        def take_back(sock: socket.socket, head: bytes) -> None:
            # The owner did not take it in time: served here, as when it is unreachable
            # (its hand-offs are skipped for a while, so this one is not handed off again).
            taken_back.inc()
            if self.should_exit:
                refuse_stopping(sock)
                return
            serve(sock, head)

        affinity.listen(loop, adopt, take_back)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._affinity.close()
        await super().shutdown(sockets=sockets)


async def _adopt(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, factory: Callable[[], asyncio.Protocol]
) -> None:
    try:
        await loop.connect_accepted_socket(factory, sock=sock)
    except OSError:
        sock.close()


def _die_with_parent() -> None:
    """Linux: this worker gets SIGTERM when the supervisor dies (a SIGKILL of the parent
    must not leave workers serving the socket)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def worker_main(argv: Sequence[str]) -> int:
    """One worker of ``serve --workers N``, started by the supervisor: settings from the
    environment (where ``serve`` put its options), the listening socket inherited."""
    parser = _Parser(prog="crdt-server worker")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--heartbeat-fd", type=int)
    args = parser.parse_args(argv)
    _die_with_parent()
    if os.getppid() == 1:
        return 1  # the supervisor is already gone
    sock = socket.socket(fileno=args.fd)
    settings = Settings.from_env(fragments=FRAGMENTS)
    if args.heartbeat_fd is not None:
        os.set_blocking(args.heartbeat_fd, False)
    config = uvicorn_config(settings, app_from_env(args.index))
    affinity = Affinity(
        args.index, args.count, args.run_dir, timeout=settings.handoff_timeout_seconds
    )
    server = _WorkerServer(
        config,
        affinity,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        loop_stall=settings.loop_stall_seconds,
        heartbeat_fd=args.heartbeat_fd,
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_graceful_shutdown)
    server.run(sockets=[sock])
    return 0 if server.started else 3


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    return None


def signing_secret_source(settings: Settings, *, create: bool) -> str:
    """Where the HS256 secret that ``token`` signs with comes from, as a phrase.

    Refuses (:class:`CliError`) when neither ``CRDT_SERVER_AUTH_SECRET`` nor the data
    directory's ``auth_secret`` exists: a secret created here would be one no server uses
    (a server started elsewhere makes its own), so every token minted with it would get 401.
    """
    if settings.auth_secret:
        return "CRDT_SERVER_AUTH_SECRET"
    path = settings.data_dir / SECRET_FILE
    if path.is_file():
        return str(path)
    if not create:
        raise CliError(
            f"no signing secret: {path} does not exist and CRDT_SERVER_AUTH_SECRET is unset, "
            "so no server would accept the token; pass the server's --data-dir, start the "
            "server once first, or add --create-secret"
        )
    load_or_create_secret(settings.data_dir)
    return f"{path} (created)"


def mint(settings: Settings, args: argparse.Namespace) -> str:
    codec = token_codec(settings)
    return codec.mint(
        sub=args.sub,
        role=args.role,
        wedding=args.wedding[0] if len(args.wedding) == 1 else args.wedding,
        name=args.name,
        ttl=args.ttl or settings.token_ttl_seconds,
        email=args.email,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crdt-server``; returns the exit status (2: refused, with one line on stderr)."""
    args = _parser().parse_args(argv)
    feature_commands: dict[str, Command] = {c.name: c for c in commands_of(FEATURES)}
    try:
        if args.command == "serve":
            settings = Settings.from_env(
                fragments=FRAGMENTS,
                host=args.host,
                port=args.port,
                data_dir=args.data_dir,
                log_level=args.log_level,
                allow_anonymous=args.allow_anonymous,
                allow_anonymous_on_network=args.allow_anonymous_on_network,
                workers=args.workers,
                redis_url=args.redis_url,
            )
            if args.demo and settings.workers > 1:
                raise SettingsError("--demo runs with one worker")
            serve(settings, demo=args.demo)
        elif args.command == "token":
            settings = Settings.from_env(fragments=FRAGMENTS, data_dir=args.data_dir)
            if any(a.startswith("HS") for a in settings.algorithms):
                source = signing_secret_source(settings, create=args.create_secret)
                print(f"crdt-server: signing with the secret from {source}", file=sys.stderr)
            # The token is the last line, so scripts can take it with `tail -n 1`.
            print(mint(settings, args))
        elif args.command in feature_commands:
            command = feature_commands[args.command]
            settings = data_commands.settings_for(args, FRAGMENTS)
            if hasattr(args, "database_url"):  # it takes the store options: it opens one
                data_commands.refuse_unreadable_store(settings, SCHEMAS)
            return command.run(settings, args)
        else:
            # The features' sections and tables ride along (the tools import no feature).
            return data_commands.run(
                args,
                sections=[section for feature in FEATURES for section in feature.export],
                schemas=SCHEMAS,
            )
    except (SettingsError, StartupError, ValueError, OSError, TokenError, CliError) as exc:
        print(f"crdt-server {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except data_commands.ToolError as exc:
        print(f"crdt-server {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2
    return 0


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


if __name__ == "__main__":
    raise SystemExit(main())
