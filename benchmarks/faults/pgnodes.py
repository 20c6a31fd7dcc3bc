"""The campaign's PostgreSQL hosts: a primary made with ``initdb`` and, for a run with a
failover, a synchronous standby made from it with ``pg_basebackup -R`` (streaming,
``synchronous_standby_names = '*'`` and ``synchronous_commit = on`` on the primary, so a
commit is acknowledged only once the standby has it). Every ``initdb``, ``pg_ctl`` and
``pg_basebackup`` runs as ``postgres`` in the host's namespace through ``runuser``.

A failover (:func:`failover`) fences the primary (stopped with ``-m immediate``, as a host
that died) unless told not to, then promotes the standby with ``pg_ctl promote``; the
servers hold a libpq multi-host URL with ``target_session_attrs=read-write``
(:func:`multi_host_url`), so they connect to whichever host is read-write now. The new
primary runs without a synchronous standby until :func:`rebuild` makes the old one its
standby again (a fresh base backup: its timeline forked) and turns synchronous commit on.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.faults.netns import Host, sh

__all__ = ["PG_PORT", "Postgres", "failover", "multi_host_url", "pg_bin", "rebuild"]

PG_PORT = 5432
SYNC_FILE = "sync.conf"
"""In the data folder, included by ``postgresql.conf``: the primary's
``synchronous_standby_names`` (absent on a standby and on a primary without one)."""


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no {name}: scripts/setup-faults installs PostgreSQL")
    return found[-1]


@dataclass
class Postgres:
    host: Host
    dir: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host.address}:{PG_PORT}/crdt"

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def _as_postgres(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return sh(*self.host.argv("runuser", "-u", "postgres", "--", *argv))

    def _own_settings(self) -> str:
        return (
            f"listen_addresses = '{self.host.address}'\nport = {PG_PORT}\n"
            f"unix_socket_directories = '{self.dir}'\nmax_connections = 100\n"
            f"shared_buffers = 32MB\ninclude_if_exists = '{SYNC_FILE}'\n"
        )

    def _prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir, "postgres", "postgres")

    def create(self) -> None:
        self._prepare()
        self._as_postgres(pg_bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres")
        subnet = ".".join(self.host.address.split(".")[:3]) + ".0/24"
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {subnet} trust\nhost replication all {subnet} trust\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(self._own_settings())
        self.start()
        self._as_postgres(pg_bin("createdb"), "-h", str(self.dir), "-p", str(PG_PORT), "crdt")

    def follow(self, primary: Postgres) -> None:
        """Become ``primary``'s streaming standby: a fresh base backup (``-R`` writes
        ``primary_conninfo`` and ``standby.signal``), this host's own address, started,
        and waited for until the primary sees it streaming."""
        self._prepare()
        shutil.rmtree(self.data, ignore_errors=True)
        self._as_postgres(
            pg_bin("pg_basebackup"), "-h", primary.host.address, "-p", str(PG_PORT),
            "-U", "postgres", "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        (self.data / SYNC_FILE).unlink(missing_ok=True)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(self._own_settings())
        self.start()
        deadline = time.monotonic() + 60
        while primary.streaming() < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.host.name}: not streaming from the primary in 60 s")
            time.sleep(0.2)  # polling another process: nothing to wait on

    def query(self, sql: str) -> str:
        done = self._as_postgres(
            pg_bin("psql"), "-h", str(self.dir), "-p", str(PG_PORT), "-d", "postgres",
            "-XAtc", sql,
        )  # fmt: skip
        return done.stdout.strip()

    def streaming(self) -> int:
        """How many standbys stream from this primary."""
        try:
            sql = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
            return int(self.query(sql))
        except (RuntimeError, ValueError):
            return 0

    def synchronous(self, on: bool) -> None:
        """Whether a commit waits for a standby (``synchronous_standby_names = '*'``)."""
        path = self.data / SYNC_FILE
        if on:
            path.write_text("synchronous_standby_names = '*'\nsynchronous_commit = on\n")
            shutil.chown(path, "postgres", "postgres")
        else:
            path.unlink(missing_ok=True)
        self.ctl("reload")

    def ctl(self, *args: str) -> None:
        self._as_postgres(
            pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "log"),
            "-w", "-t", "60", *args,
        )  # fmt: skip

    def start(self) -> None:
        self.ctl("start")

    def restart(self, mode: str) -> None:
        self.ctl("restart", "-m", mode)

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError):
            self.ctl("stop", "-m", mode)


def multi_host_url(nodes: list[Postgres]) -> str:
    """A libpq URL naming every node, connecting to the one that is read-write."""
    hosts = ",".join(f"{n.host.address}:{PG_PORT}" for n in nodes)
    return f"postgresql://postgres@{hosts}/crdt?target_session_attrs=read-write"


def failover(primary: Postgres, standby: Postgres, fence: str) -> None:
    """``standby`` promoted; the old ``primary`` fenced first: ``stop`` stops it with ``-m
    immediate`` (a host that died), ``drop`` drops every packet to its port in its
    namespace (a host that vanished from the network, still running), ``none`` leaves it
    running, read-write, on its own timeline."""
    if fence == "stop":
        primary.stop("immediate")
    elif fence == "drop":
        primary.host.iptables("-A", "INPUT", "-p", "tcp", "--dport", str(PG_PORT), "-j", "DROP")
    standby.ctl("promote")


def rebuild(old: Postgres, new: Postgres) -> None:
    """After a failover: ``old`` (stopped, cut off or still running unfenced) made
    ``new``'s synchronous standby from a fresh base backup."""
    old.stop("immediate")
    old.host.flush()
    old.follow(new)
    new.synchronous(True)
