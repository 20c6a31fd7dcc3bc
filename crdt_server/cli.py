"""The ``crdt-server`` command."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors.multiprocess import Multiprocess

from crdt_server.app import create_app, token_codec
from crdt_server.auth.permissions import ROLES
from crdt_server.edge.demo import with_demo
from crdt_server.edge.websocket import SyncWebSocketProtocol
from crdt_server.settings import ENV_PREFIX, Settings, SettingsError

__all__ = ["main"]

_TOKEN_IN_URL = re.compile(r"((?:[?&]|\b)(?:token|access_token)=)[^&\s\"']+", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Query tokens never reach a log line, whichever library logs the URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message.lower():
            record.msg = _TOKEN_IN_URL.sub(r"\1[redacted]", message)
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the error, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crdt-server", description=__doc__)
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
        help="let clients without a token read and write (local demos and benchmarks only)",
    )
    serve.add_argument(
        "--demo",
        action="store_true",
        help="seed the sample wedding 'demo' and print a sign-in link per role (ROLE URL)",
    )
    token = sub.add_parser("token", help="mint a token signed with the server's secret")
    token.add_argument("--wedding", required=True, action="append", help="wedding id (repeatable)")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--name", help="display name (default: the user id)")
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default 3600)")
    token.add_argument("--data-dir", type=Path, help="data directory holding the secret")
    return parser


FULL_COLLECTION_AFTER = 100
"""Generation-1 collections before a full one may run (CPython's default is 10)."""


def tune_gc() -> None:
    """The garbage collector of a server process: what is loaded by now (modules, the app)
    is frozen out of every later collection, and full collections run a tenth as often.

    A full collection walks every tracked object: with 5,000 connections open it paused the
    event loop for 140-180 ms, and those pauses were the benchmark's p99 time to synced.
    The price: cyclic garbage that outlives two younger collections waits longer to be
    freed (CPython also waits until the long-lived objects have grown by a quarter).
    Reference counting still frees everything else at once.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)


def app_from_env() -> Starlette:
    """The app of one worker process (``--workers N``): settings come from the environment,
    where ``serve`` put its command-line options."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    tune_gc()
    return app


def serve(settings: Settings, *, demo: bool = False) -> None:
    configure_logging(settings.log_level, settings.log_format)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    host, port = sock.getsockname()[:2]
    app: Starlette | str
    if settings.workers == 1:
        app = create_app(settings)
        if demo:
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            with_demo(app, settings, f"http://{f'[{shown}]' if ':' in shown else shown}:{port}")
        tune_gc()
    else:
        # Every worker builds its own app from the environment and shares the socket.
        for field in dataclasses.fields(Settings):
            value = getattr(settings, field.name)
            os.environ[ENV_PREFIX + field.name.upper()] = str(value)
        app = "crdt_server.cli:app_from_env"
    config = uvicorn.Config(
        app,
        factory=settings.workers > 1,
        workers=settings.workers,
        ws=SyncWebSocketProtocol if settings.websocket_stack == "native" else "websockets-sansio",
        ws_max_size=settings.max_message_bytes,
        ws_per_message_deflate=settings.websocket_compression,
        ws_ping_interval=settings.websocket_ping_seconds or None,
        ws_ping_timeout=settings.websocket_ping_seconds or None,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.close_timeout_seconds * 2)),
    )
    server = uvicorn.Server(config)
    # uvicorn handles SIGTERM/SIGINT (graceful shutdown: sockets closed with 1012, rooms
    # flushed) and then re-raises the signal to the handler that was installed before it.
    # A no-op handler there makes a graceful stop exit 0 instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _after_graceful_shutdown)
    # Tests and scripts read this line to learn the port when --port 0 was given.
    print(f"crdt-server listening on http://{host}:{port}", flush=True)
    if settings.workers > 1:
        Multiprocess(config, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


def _after_graceful_shutdown(signum: int, frame: FrameType | None) -> None:
    return None


def mint(settings: Settings, args: argparse.Namespace) -> str:
    codec = token_codec(settings)
    return codec.mint(
        sub=args.sub,
        role=args.role,
        wedding=args.wedding[0] if len(args.wedding) == 1 else args.wedding,
        name=args.name,
        ttl=args.ttl or settings.token_ttl_seconds,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = Settings.from_env(
                host=args.host,
                port=args.port,
                data_dir=args.data_dir,
                log_level=args.log_level,
                allow_anonymous=args.allow_anonymous,
                workers=args.workers,
                redis_url=args.redis_url,
            )
            if args.demo and settings.workers > 1:
                raise SettingsError("--demo runs with one worker")
            serve(settings, demo=args.demo)
        elif args.command == "token":
            settings = Settings.from_env(data_dir=args.data_dir)
            # The token is the last line, so scripts can take it with `tail -n 1`.
            print(mint(settings, args))
    except (SettingsError, ValueError, OSError) as exc:
        print(f"crdt-server: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
