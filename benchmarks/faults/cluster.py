"""The campaign's cluster on one machine: a PostgreSQL host (its own cluster, made with
``initdb`` and run with ``pg_ctl`` as ``postgres``), a Redis host, server hosts running
``crdt-server serve`` on that store and bus, an HAProxy host with ``deploy/haproxy.cfg``
in front, and client hosts (:mod:`benchmarks.faults.clienthost`). Nothing here touches
the machine's own PostgreSQL or Redis: every process listens on its namespace's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmarks.faults.netns import Host, Network
from benchmarks.faults.pgnodes import Postgres, multi_host_url
from benchmarks.faults.watchers import WEBHOOK_ENV

ROOT = Path(__file__).resolve().parents[2]
REDIS_PORT = 6379
SERVER_PORT = 8000
PROXY_PORT = 8080
HAPROXY = os.environ.get("CRDT_SERVER_HAPROXY", "/usr/sbin/haproxy")
FAKETIME = "/usr/lib/*/faketime/libfaketimeMT.so.1"
"""libfaketime (Debian's ``libfaketime``): a server's wall clock moved by a file."""


def faketime_env(clock_file: Path) -> dict[str, str]:
    """A process whose wall clock is ``clock_file``'s offset (``+600``, ``-600``, ``+0``)
    from the real one, read again at every call; its monotonic clock is the real one (an
    NTP step moves the wall clock only)."""
    found = sorted(glob.glob(FAKETIME))
    if not found:
        raise RuntimeError("no libfaketimeMT.so.1: scripts/setup-faults installs faketime")
    clock_file.write_text("+0\n")
    return {
        "LD_PRELOAD": found[-1],
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def wait_until(what: str, done: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready in {timeout:.0f} s")
        time.sleep(0.1)  # polling another process: nothing to wait on


def http_status(url: str, timeout: float = 2) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Service:
    """A process started in a host's namespace, its output in ``log``."""

    host: Host
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = None

    def start(self) -> None:
        self._out = self.log.open("ab")
        self.process = subprocess.Popen(
            self.host.argv(*self.argv),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            cwd=ROOT,
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, sig: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._out is not None:
            self._out.close()
        self.process = None


@dataclass
class Redis:
    service: Service

    @property
    def url(self) -> str:
        return f"redis://{self.service.host.address}:{REDIS_PORT}/0"

    def start(self) -> None:
        self.service.start()
        wait_until("redis", self._pong, 20)

    def _pong(self) -> bool:
        import socket

        with (
            contextlib.suppress(OSError),
            socket.create_connection((self.service.host.address, REDIS_PORT), timeout=1) as conn,
        ):
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
        return False


@dataclass
class Server:
    name: str
    service: Service

    @property
    def url(self) -> str:
        return f"http://{self.service.host.address}:{SERVER_PORT}"

    def start(self) -> None:
        self.service.start()
        wait_until(self.name, lambda: http_status(f"{self.url}/readyz") == 200, 60)


@dataclass
class Cluster:
    """The hosts of one campaign; :meth:`close` stops every process it started."""

    network: Network
    dir: Path
    postgres: Postgres
    redis: Redis
    servers: list[Server]
    proxy: Service
    secret: str = ""
    """The servers' shared ``CRDT_SERVER_AUTH_SECRET``."""
    standby: Postgres | None = None
    """The primary's synchronous standby (``Cluster.build(standby)``); after a failover,
    the old primary until it is made the new one's standby again."""
    nodes: list[Postgres] = field(default_factory=list)
    """Every PostgreSQL host, in the servers' URL's order."""

    @property
    def database_url(self) -> str:
        """What the servers and the checker connect to: with a standby, a multi-host URL
        to whichever node is read-write."""
        return multi_host_url(self.nodes) if len(self.nodes) > 1 else self.postgres.url

    @property
    def url(self) -> str:
        """Where clients connect: HAProxy."""
        return f"ws://{self.proxy.host.address}:{PROXY_PORT}"

    @classmethod
    def build(
        cls,
        network: Network,
        directory: Path,
        servers: int = 2,
        fake_clock: bool = False,
        standby: bool = False,
    ) -> Cluster:
        """``fake_clock``: the servers run under libfaketime, their wall clocks moved by
        :meth:`clock_file` (``server-clock-jump``); ``standby``: PostgreSQL has a
        synchronous standby on a host of its own, ``pg2`` (``pg-failover``)."""
        if servers != 2:
            raise ValueError("deploy/haproxy.cfg names two servers")
        pg_host = network.add("pg", 10)
        redis_host = network.add("redis", 11)
        lb_host = network.add("lb", 12)
        server_hosts = [network.add(f"s{i + 1}", 21 + i) for i in range(servers)]
        # Its own folder under the temporary directory: ``postgres`` must reach it, and the
        # campaign's folder may be private (pytest's are).
        postgres = Postgres(pg_host, Path(tempfile.mkdtemp(prefix=f"{network.tag}-pg-")))
        postgres.create()
        nodes = [postgres]
        if standby:
            pg2 = network.add("pg2", 13)
            second = Postgres(pg2, Path(tempfile.mkdtemp(prefix=f"{network.tag}-pg-")))
            second.follow(postgres)
            postgres.synchronous(True)
            nodes.append(second)
        database_url = multi_host_url(nodes) if standby else postgres.url
        redis = Redis(
            Service(
                redis_host,
                [
                    shutil.which("redis-server") or "redis-server", "--bind", redis_host.address,
                    "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no",
                    "--protected-mode", "no",
                ],
                directory / "redis.log",
            )
        )  # fmt: skip
        redis.start()
        secret = secrets.token_hex(32)
        env = {
            "CRDT_SERVER_AUTH_SECRET": secret,
            "CRDT_SERVER_DATABASE_URL": database_url,
            "CRDT_SERVER_REDIS_URL": redis.url,
            "CRDT_SERVER_ALLOW_ANONYMOUS": "1",
            "CRDT_SERVER_ALLOW_ANONYMOUS_ON_NETWORK": "1",
            "CRDT_SERVER_TRUSTED_PROXIES": lb_host.address,
            **WEBHOOK_ENV,
        }
        made = []
        for i, host in enumerate(server_hosts):
            env = {**env, "CRDT_SERVER_PUBLIC_URL": f"http://{lb_host.address}:{PROXY_PORT}"}
            own = faketime_env(directory / f"s{i + 1}.faketime") if fake_clock else {}
            argv = [
                sys.executable, "-m", "crdt_server", "serve", "--host", host.address,
                "--port", str(SERVER_PORT), "--data-dir", str(directory / f"s{i + 1}"),
                "--allow-anonymous",
            ]  # fmt: skip
            log = directory / f"s{i + 1}.log"
            made.append(Server(f"s{i + 1}", Service(host, argv, log, {**env, **own})))
        for server in made:
            server.start()
        stats = directory / "haproxy-stats.cfg"
        stats.write_text(f"global\n    stats socket {directory / 'haproxy.sock'} mode 600\n")
        proxy = Service(
            lb_host,
            [HAPROXY, "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg"), "-f", str(stats)],
            directory / "haproxy.log",
            {
                "CRDT_BIND": f"{lb_host.address}:{PROXY_PORT}",
                **{f"CRDT_SERVER_{i + 1}": f"{s.service.host.address}:{SERVER_PORT}"
                   for i, s in enumerate(made)},
            },
        )  # fmt: skip
        proxy.start()
        cluster = cls(
            network, directory, postgres, redis, made, proxy, secret,
            nodes[1] if standby else None, nodes,
        )  # fmt: skip
        wait_until(
            "haproxy",
            lambda: http_status(f"http://{lb_host.address}:{PROXY_PORT}/readyz") == 200,
            30,
        )
        return cluster

    def revive(self, timeout: float = 10) -> list[str]:
        """Whatever is not ready ``timeout`` seconds from now is started again (Redis,
        then each server whose ``/readyz`` does not answer 200), so that the next schedule
        starts on a whole cluster; what it had to do, as notes."""
        notes = []
        if not self.redis.service.alive:
            self.redis.start()
            notes.append("Redis was down: started")
        deadline = time.monotonic() + timeout
        for server in self.servers:
            while http_status(f"{server.url}/readyz") != 200 and time.monotonic() < deadline:
                time.sleep(0.2)  # polling another process: nothing to wait on
            status = http_status(f"{server.url}/readyz")
            if status != 200:
                server.service.stop()
                try:
                    server.start()
                except TimeoutError:  # once more: what kept it from starting may be over
                    server.service.stop()
                    server.start()
                notes.append(
                    f"{server.name} was not ready after the heal window (/readyz {status}): "
                    "restarted"
                )
        return notes

    def proxy_status(self) -> dict[str, str]:
        """HAProxy's view of the servers (``by_wedding``): name -> UP, DOWN..."""
        import socket

        found: dict[str, str] = {}
        try:
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(5)
                conn.connect(str(self.dir / "haproxy.sock"))
                conn.sendall(b"show stat\n")
                text = b""
                while chunk := conn.recv(65536):
                    text += chunk
        except OSError:
            return found
        for line in text.decode().splitlines():
            cells = line.split(",")
            if len(cells) > 17 and cells[0] == "by_wedding" and cells[1].startswith("s"):
                found[cells[1]] = cells[17]
        return found

    def wait_proxy_up(self, timeout: float = 30) -> None:
        """Until HAProxy holds every server up (a schedule starts on a whole cluster)."""
        names = {s.name for s in self.servers}
        wait_until(
            "HAProxy's servers up",
            lambda: {n for n, st in self.proxy_status().items() if st.startswith("UP")} == names,
            timeout,
        )

    def clock_file(self, name: str) -> Path:
        """The file that sets server ``name``'s wall clock (``Cluster.build(fake_clock)``)."""
        return self.dir / f"{name}.faketime"

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def close(self) -> None:
        self.proxy.stop()
        for server in self.servers:
            server.service.stop()
        self.redis.service.stop()
        for node in self.nodes or [self.postgres]:
            node.stop()


@dataclass
class ClientHost:
    """``benchmarks.faults.clienthost`` in a client namespace."""

    host: Host
    out: Path
    process: asyncio.subprocess.Process

    @classmethod
    async def start(
        cls, host: Host, url: str, writers: list[dict[str, str]], rate: float, out: Path
    ) -> ClientHost:
        config = out.with_suffix(".config.json")
        config.write_text(
            json.dumps({"url": url, "writers": writers, "rate": rate, "out": str(out)})
        )
        log = out.with_suffix(".log").open("ab")
        process = await asyncio.create_subprocess_exec(
            *host.argv(sys.executable, "-m", "benchmarks.faults.clienthost", str(config)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
            cwd=ROOT,
        )  # fmt: skip
        log.close()
        return cls(host, out, process)

    async def ask(
        self, command: dict[str, Any] | None, event: str, timeout: float
    ) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        if command is not None:
            self.process.stdin.write((json.dumps(command) + "\n").encode())
            await self.process.stdin.drain()
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise RuntimeError(
                        f"client host {self.host.name} exited (log: {self.out.with_suffix('.log')})"
                    )
                reply: dict[str, Any] = json.loads(line)
                if reply.get("event") == event:
                    return reply

    async def close(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
