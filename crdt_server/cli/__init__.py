"""The ``crdt-server`` command: its arguments, ``serve`` (one process, or a supervisor and
its workers), ``token``, the features' commands and the data tools.

The parts live beside it: the log lines (:mod:`crdt_server.cli.logs`), one server process
(:mod:`crdt_server.cli.process`) and the workers of ``--workers`` (:mod:`crdt_server.cli.workers`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import socket
import sys
import typing
from collections.abc import Sequence
from functools import partial
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from types import FrameType

from starlette.applications import Starlette

from crdt_server.app import (
    CORE_SCHEMAS,
    EVENT_TABLES,
    FEATURES,
    create_app,
    features_of,
    token_codec,
)
from crdt_server.auth.permissions import ROLES
from crdt_server.auth.tokens import SECRET_FILE, TokenError, load_or_create_secret
from crdt_server.cli.logs import configure_logging, redact_tokens
from crdt_server.cli.process import (
    Server,
    StartupError,
    check_startup,
    private_data_dir,
    tune_gc,
    uvicorn_config,
)
from crdt_server.cli.workers import WorkerServer, die_with_parent, worker_argv
from crdt_server.core.quarantine import slot_path
from crdt_server.core.watchdog import tick_seconds
from crdt_server.edge.demo import with_demo
from crdt_server.edge.links import public_url_missing, server_url
from crdt_server.edge.supervisor import Supervisor
from crdt_server.features import (
    Command,
    Feature,
    commands_of,
    event_namespaces_of,
    fragments_of,
    schemas_of,
)
from crdt_server.placement import ALONE, Placement
from crdt_server.rlimits import raise_open_files_limit
from crdt_server.settings import Settings, SettingsError
from crdt_server.tools import commands as data_commands
from crdt_server.wire.affinity import Affinity, make_run_dir
from crdt_server.wire.http_head import head_deadline_protocol
from crdt_server.wire.proxy import OwnerProxy

__all__ = ["main", "redact_tokens"]


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
    token.add_argument(
        "--email", help="email address (the member directory keeps it; implies --member)"
    )
    token.add_argument(
        "--member",
        action="store_true",
        help="make its holder a member the couple sees in Members (without it, an "
        "operator's token: it reads and writes as its role, listed nowhere)",
    )
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
SCHEMAS = (*CORE_SCHEMAS, *schemas_of(FEATURES))
"""The core's and every feature's tables: what ``restore`` and ``check`` expect, whose
versions a store must not hold newer than (``serve`` and every command that opens a store)."""


def app_from_env(worker: int | None = None) -> Starlette:
    """The app of one worker process (``--workers N``): settings come from the environment,
    where ``serve`` put its command-line options; ``worker``, its index, names its apply
    slot (:mod:`crdt_server.core.quarantine`) and its place among the workers
    (:mod:`crdt_server.placement`)."""
    settings = Settings.from_env(fragments=FRAGMENTS)
    configure_logging(settings.log_level, settings.log_format)
    head_deadline_protocol(
        settings.handshake_timeout_seconds,
        settings.max_pending_handshakes_per_address,
        settings.body_timeout_seconds,
    )
    app = create_app(
        settings,
        features=features_of(settings),
        apply_slot=None if worker is None else slot_path(settings.data_dir, worker),
        placement=ALONE if worker is None else Placement(worker, settings.workers),
    )
    tune_gc(settings)
    return app


def serve(settings: Settings, *, demo: bool = False) -> None:
    configure_logging(settings.log_level, settings.log_format)
    _prepare_to_serve(settings)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    host, port = sock.getsockname()[:2]
    announce = f"crdt-server listening on http://{host}:{port}"
    if port != settings.port:
        # A port chosen at start (0): links built without a request (an email's
        # unsubscribe link) name the one the server listens on; workers inherit it.
        settings = dataclasses.replace(settings, port=port)
    if public_url_missing(settings):
        logging.getLogger("crdt_server.cli").warning(
            "CRDT_SERVER_PUBLIC_URL is unset and the server listens on a network address"
            " (%s): links it sends out (emails) name %s, links in answers each"
            " request's Host; set CRDT_SERVER_PUBLIC_URL to the URL people reach it by",
            host,
            server_url(settings),
        )
    if settings.workers > 1:
        _supervise(settings, sock, announce)
        return
    app = create_app(
        settings, features=features_of(settings), apply_slot=slot_path(settings.data_dir, None)
    )
    if demo or settings.allow_anonymous:
        # Links start from CRDT_SERVER_PUBLIC_URL when set (behind a TLS proxy), as every
        # link the server hands out does (edge/links.py).
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        local = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
        # --allow-anonymous alone lets a person in too: the links, without seeding.
        with_demo(app, settings, settings.public_url.rstrip("/") or local, seed=demo)
    tune_gc(settings)
    _run(settings, app, sock, announce)


def _prepare_to_serve(settings: Settings) -> None:
    """What is checked and set before anything listens: the data directory's modes, the
    settings, the store's readability, the open-files limit."""
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


def _supervise(settings: Settings, sock: socket.socket, announce: str) -> None:
    """Serve as the supervisor of ``settings.workers`` worker processes sharing ``sock``."""
    # Every worker builds its own app from the environment and inherits the socket.
    os.environ.update(settings.environment())
    sock.listen(2048)
    print(announce, flush=True)
    run_dir = make_run_dir()
    Supervisor(
        partial(worker_argv, count=settings.workers, run_dir=run_dir),
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


def _run(settings: Settings, app: Starlette, sock: socket.socket, announce: str) -> None:
    """Serve ``app`` on ``sock`` in this process until a signal stops it."""
    config = uvicorn_config(settings, app)
    server = Server(
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
    die_with_parent()
    if os.getppid() == 1:
        return 1  # the supervisor is already gone
    sock = socket.socket(fileno=args.fd)
    settings = Settings.from_env(fragments=FRAGMENTS)
    if args.heartbeat_fd is not None:
        os.set_blocking(args.heartbeat_fd, False)
    app = app_from_env(args.index)
    # The outermost layer: a request naming a wedding another worker owns is run there.
    app.add_middleware(OwnerProxy)
    config = uvicorn_config(settings, app)
    affinity = Affinity(
        args.index, args.count, args.run_dir, timeout=settings.handoff_timeout_seconds
    )
    server = WorkerServer(
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
        # An address is given for the directory to keep: its holder is a member.
        member=args.member or args.email is not None,
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
                namespaces=event_namespaces_of(FEATURES),
                events=EVENT_TABLES,
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
