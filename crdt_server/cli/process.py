"""One server process under uvicorn: its configuration, what is checked before anything
listens, the data directory's modes, the garbage collector's policy, and the server that
says it listens once the app has started and ends within its shutdown timeout.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
import threading
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from crdt_server.app import features_of, permission_matrix, token_codec
from crdt_server.core.watchdog import LoopWatchdog
from crdt_server.edge.upgrade import STATE_KEY as GATE_KEY
from crdt_server.edge.upgrade import Gate
from crdt_server.gcpolicy import SurvivorFreezer, freeze_start_up
from crdt_server.settings import ENV_PREFIX, Settings, SettingsError
from crdt_server.tools.backup import repair_modes
from crdt_server.wire.http_head import head_deadline_protocol
from crdt_server.wire.uvicorn_private import app_state
from crdt_server.wire.websocket import SyncWebSocketProtocol

__all__ = [
    "Server",
    "StartupError",
    "check_startup",
    "parse_trusted_proxies",
    "private_data_dir",
    "tune_gc",
    "uvicorn_config",
]


def tune_gc(settings: Settings) -> None:
    """The garbage collector of a server process (crdt_server/gcpolicy.py): what is loaded
    by now is frozen out of every later collection, and so is whatever survives two
    collections, with a full collection every ``gc_full_collection_seconds``; 0 keeps
    CPython's own schedule after start-up."""
    if settings.gc_full_collection_seconds > 0:
        SurvivorFreezer(settings.gc_full_collection_seconds).install()
    else:
        freeze_start_up()


class StartupError(Exception):
    """The server could not start; the message is the one line printed on stderr."""


def check_startup(settings: Settings) -> None:
    """Everything that can be wrong with the settings, found before anything listens: a
    bad setting gives one line on stderr and a non-zero exit, never a half-started server."""
    # Against the capabilities of the features it runs (an unknown feature stops it here).
    permission_matrix(settings, features_of(settings))
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


class Server(uvicorn.Server):
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
