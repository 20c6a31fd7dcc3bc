"""A multi-host URL (a primary and its standby, ``target_session_attrs=read-write``) with a
host that vanished from the network: the store connects to the next host within its
connect timeout, as libpq does, instead of waiting the whole timeout out on the first
(a fenced primary whose port drops every packet held every new connection after the fault
campaign's failover, ``docs/reliability/faults.md``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from crdt_server.storage import NewUpdate, PostgresStore
from crdt_server.storage._postgres_hosts import HostChooser, url_hosts


@pytest_asyncio.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that takes connections and never says a word (as a host whose packets are
    dropped: the PostgreSQL handshake gets no answer)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield int(port)
    finally:
        server.close()
        for writer in held:
            writer.close()
        await server.wait_closed()


def _with_hosts(url: str, first: str) -> str:
    """``url`` with ``first`` before its own host, asking for a read-write host."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user}@{first},{host}" if user else f"{first},{host}"
    return parts._replace(netloc=netloc, query="target_session_attrs=read-write").geturl()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_silent_first_host_does_not_keep_the_store_from_the_next(
    postgres_url: str, silent_port: int
) -> None:
    url = _with_hosts(postgres_url, f"127.0.0.1:{silent_port}")
    store = PostgresStore(url, answer_timeout=4.0, lock_timeout=2.0)
    began = time.monotonic()
    await store.open()  # asyncpg alone: TimeoutError after the whole 4 s, never the next host
    try:
        assert time.monotonic() - began < 4.0
        seqs = await store.append([NewUpdate(doc="w1/guests", data=b"\x00\x00", origin="t")])
        assert len(seqs) == 1
        log = await store.load("w1/guests")
        assert log is not None and log.updates == [b"\x00\x00"]
    finally:
        await store.close()


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_the_host_that_answered_is_tried_first_from_then_on(
    postgres_url: str, silent_port: int
) -> None:
    url = _with_hosts(postgres_url, f"127.0.0.1:{silent_port}")
    chooser = HostChooser(url_hosts(url))
    began = time.monotonic()
    first = await chooser.connect(url, timeout=4.0)
    await first.close()
    assert 1.5 < time.monotonic() - began < 4.0  # the silent host's share, then the next
    began = time.monotonic()
    second = await chooser.connect(url, timeout=4.0)
    await second.close()
    assert time.monotonic() - began < 1.5  # straight to the host that answered


@pytest.mark.timeout(10)
def test_the_hosts_of_a_url_are_read_in_order() -> None:
    url = "postgresql://u:p@db1:5433,10.0.0.2,[::1]:6000/crdt?target_session_attrs=read-write"
    assert url_hosts(url) == [("db1", 5433), ("10.0.0.2", 5432), ("::1", 6000)]
    assert url_hosts("postgresql://u@db/crdt") == [("db", 5432)]
    assert url_hosts("postgresql:///crdt?host=/run/postgresql") == []
