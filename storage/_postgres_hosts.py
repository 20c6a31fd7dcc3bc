"""Connecting to one host of a multi-host URL, as libpq does: each host in turn with its
own timeout.

``postgresql://u@primary:5432,standby:5432/db?target_session_attrs=read-write`` names every
node a failover may make the primary. asyncpg tries them in order under one timeout for
the whole connect, so a host that vanished from the network (its packets dropped, as a
fenced primary's port is) holds every new connection until that timeout and the next
host is never tried: after such a failover no connection ever reached the new primary.
Here each host gets its share of the timeout (libpq's ``connect_timeout`` is per host
too), and the host that answered last is tried first, so only the first connection after
a failover pays for the host that vanished."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg

__all__ = ["HostChooser", "url_hosts"]

DEFAULT_PORT = 5432


def url_hosts(dsn: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` pairs of a ``postgresql://`` URL's host list, in order (none
    for a URL without hosts, such as one naming a Unix socket in its query)."""
    netloc = urlsplit(dsn).netloc.rpartition("@")[2]
    hosts: list[tuple[str, int]] = []
    for part in netloc.split(","):
        if not part:
            continue
        if part.startswith("["):  # [IPv6]:port
            address, _, rest = part[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            address, _, port = part.partition(":")
        hosts.append((address, int(port) if port else DEFAULT_PORT))
    return hosts


class HostChooser:
    """``connect`` for :func:`asyncpg.create_pool`: the URL's hosts one at a time, each
    within an equal share of the connect's ``timeout``, starting with the host that
    answered last; the last host's error if none could be used."""

    def __init__(self, hosts: list[tuple[str, int]]) -> None:
        if not hosts:
            raise ValueError("no hosts")
        self.hosts = hosts
        self._last = 0

    async def connect(  # the pool passes asyncpg.connect's timeout: its name is given
        self,
        dsn: str | None = None,
        *,
        timeout: float = 60.0,  # noqa: ASYNC109
        **kwargs: Any,
    ) -> asyncpg.Connection[asyncpg.Record]:
        share = timeout / len(self.hosts)
        failure: BaseException | None = None
        for i in range(len(self.hosts)):
            index = (self._last + i) % len(self.hosts)
            host, port = self.hosts[index]
            try:
                conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(
                    dsn, host=host, port=port, timeout=share, **kwargs
                )
            except (
                OSError,
                TimeoutError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                asyncpg.exceptions.InternalClientError,  # not the host the URL asks for
            ) as exc:
                failure = exc
                continue
            self._last = index
            return conn
        assert failure is not None
        raise failure
