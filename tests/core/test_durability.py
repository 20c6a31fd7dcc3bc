"""Durability: an update whose echo reached its sender survives SIGKILL of the server.

The server records before it distributes (see ``crdt_server/core/room.py``): it echoes an
update to its sender only after the SQLite commit. So whatever a client's ``confirmed``
document holds (it only ever contains what the server sent) must be there after a kill -9
and a restart. The kill rounds below write as fast as they can without waiting for echoes,
kill the server at a random moment, and check every confirmed edit after the restart; the
data directory persists, so each round also re-checks every earlier round.

The seed is printed; set ``DURABILITY_SEED`` to replay a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pycrdt import Map, Text

from tests.server import ServerProcess
from tests.writers import MAP_NAME, TEXT_NAME, Writer
from tests.yclient import YClient

ROOMS = ("w9/guests", "w9/budget")
WRITERS = 3
ROUNDS = 5
KILL_AFTER_MS = (50, 400)
WAIT = 10.0
"""Deadline (seconds) of every wait for the server or a client."""


@dataclass
class Snapshot:
    """The content of one room as a freshly connected client sees it."""

    kv: dict[str, str]
    text: str


async def load_room(server: ServerProcess, room: str) -> Snapshot:
    async with YClient(server.ws_url, room) as fresh:
        await fresh.wait(fresh.synced.is_set, timeout=WAIT)
        kv = fresh.doc.get(MAP_NAME, type=Map).to_py()
        text = str(fresh.doc.get(TEXT_NAME, type=Text))
    return Snapshot({str(k): str(v) for k, v in kv.items()}, text)


async def close_client(client: YClient) -> None:
    async with asyncio.timeout(WAIT):
        await client.close()


async def cleanup(server: ServerProcess, clients: list[YClient]) -> None:
    """After a failure: kill the server (if still running) and end every client."""
    if server.alive:
        await server.kill()
    for client in clients:
        with contextlib.suppress(Exception):
            await close_client(client)


def make_writers(server: ServerProcess, clients: list[YClient]) -> list[Writer]:
    """WRITERS writer clients in each of ROOMS (not connected yet)."""
    writers = [
        Writer(f"c{w}@{room.split('/')[1]}", room, YClient(server.ws_url, room))
        for room in ROOMS
        for w in range(WRITERS)
    ]
    clients.extend(w.client for w in writers)
    return writers


@dataclass
class RoundResult:
    written: int = 0
    confirmed_keys: int = 0
    confirmed_tokens: int = 0
    unconfirmed_survived: int = 0


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.asyncio
@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_confirmed_updates_survive_sigkill(tmp_path: Path, synchronous: str) -> None:
    """Both SQLite sync levels: even ``normal`` has every acknowledged update in the OS."""
    seed = int(os.environ.get("DURABILITY_SEED", random.SystemRandom().randrange(2**32)))
    print(f"durability seed {seed} (DURABILITY_SEED={seed} replays it)")
    rng = random.Random(seed)
    server = ServerProcess(tmp_path / "data", env={"CRDT_SERVER_SQLITE_SYNCHRONOUS": synchronous})
    # Everything confirmed so far, per room; later rounds re-check earlier rounds' edits.
    expected_keys: dict[str, dict[str, str]] = {room: {} for room in ROOMS}
    expected_tokens: dict[str, set[str]] = {room: set() for room in ROOMS}
    # Keys present in any client's confirmed doc: the server sent them, so they were
    # committed too ("no client ever sees an update the store could still lose").
    seen_keys: dict[str, set[str]] = {room: set() for room in ROOMS}
    results: list[RoundResult] = []
    clients: list[YClient] = []
    try:
        await server.start()
        for round_no in range(ROUNDS):
            result = RoundResult()
            writers = make_writers(server, clients)
            for writer in writers:
                await writer.client.connect()
            for writer in writers:
                await writer.client.wait(writer.client.synced.is_set, timeout=WAIT)
            stop = asyncio.Event()
            tasks = [asyncio.create_task(w.run(round_no, stop)) for w in writers]
            delay = rng.uniform(*KILL_AFTER_MS) / 1000
            await asyncio.sleep(delay)  # the experiment: kill at a random moment
            code = await server.kill()
            stop.set()
            assert code == -signal.SIGKILL, f"server exit code {code}, expected -9"
            await asyncio.gather(*tasks)
            # The process is gone: whatever the readers still take from the socket was
            # sent before the kill. Closing ends the readers; then nothing can arrive.
            for writer in writers:
                await close_client(writer.client)

            for writer in writers:
                keys, tokens = writer.confirmed()
                result.written += len(writer.keys)
                result.confirmed_keys += len(keys)
                result.confirmed_tokens += len(tokens)
                expected_keys[writer.room].update(keys)
                expected_tokens[writer.room].update(tokens)
            for room in ROOMS:
                for writer in writers:
                    if writer.room == room:
                        kv = writer.client.confirmed.get(MAP_NAME, type=Map).to_py()
                        seen_keys[room].update(str(k) for k in kv)

            await server.start()
            for room in ROOMS:
                snapshot = await load_room(server, room)
                lost = {k: v for k, v in expected_keys[room].items() if snapshot.kv.get(k) != v}
                assert not lost, (
                    f"round {round_no} (seed {seed}): {len(lost)} confirmed keys lost or "
                    f"changed in {room}, e.g. {sorted(lost)[:5]}"
                )
                lost_tokens = {t for t in expected_tokens[room] if t not in snapshot.text}
                assert not lost_tokens, (
                    f"round {round_no} (seed {seed}): {len(lost_tokens)} confirmed text "
                    f"inserts lost in {room}, e.g. {sorted(lost_tokens)[:5]}"
                )
                unseen = seen_keys[room] - snapshot.kv.keys()
                assert not unseen, (
                    f"round {round_no} (seed {seed}): {len(unseen)} keys some client "
                    f"received were lost in {room}, e.g. {sorted(unseen)[:5]}"
                )
                for writer in writers:
                    if writer.room == room:
                        result.unconfirmed_survived += sum(
                            1
                            for k in writer.keys
                            if k not in expected_keys[room] and k in snapshot.kv
                        )
            print(
                f"round {round_no}: killed after {delay * 1000:.0f} ms, "
                f"{result.written} keys written, {result.confirmed_keys} confirmed "
                f"(+{result.confirmed_tokens} text inserts), "
                f"{result.unconfirmed_survived} unconfirmed survived"
            )
            results.append(result)
        assert any(r.confirmed_keys > 0 for r in results), (
            f"no round confirmed anything (seed {seed}): the test proved nothing"
        )
    finally:
        await cleanup(server, clients)


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_sigterm_closes_with_1012_and_keeps_everything(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    clients: list[YClient] = []
    try:
        await server.start()
        writers = make_writers(server, clients)
        for writer in writers:
            await writer.client.connect()
        for writer in writers:
            client = writer.client
            await client.wait(client.synced.is_set, timeout=WAIT)
            kv = client.doc.get(MAP_NAME, type=Map)
            notes = client.doc.get(TEXT_NAME, type=Text)
            for n in range(20):
                key = f"{writer.name}-term-{n}"
                kv[key] = str(n)
                writer.keys[key] = str(n)
                token = f"<{key}>"
                notes.insert(len(notes), token)
                writer.tokens.append(token)
                await client.flush()
        for writer in writers:
            await writer.client.wait(writer.client.is_confirmed, timeout=WAIT)

        started = time.monotonic()
        code = await server.stop(signal.SIGTERM, timeout=WAIT)
        elapsed = time.monotonic() - started
        log = server.log.decode(errors="replace")
        assert code == 0, f"SIGTERM: exit code {code}\n{log}"
        assert "Application shutdown complete" in log
        assert elapsed < 5, f"SIGTERM: the server took {elapsed:.1f} s to exit"
        for writer in writers:
            client = writer.client
            await client.wait(client.closed.is_set, timeout=WAIT)
            assert client.close_code == 1012, f"{writer.name}: close code {client.close_code}"
            await close_client(client)

        await server.start()
        for room in ROOMS:
            snapshot = await load_room(server, room)
            for writer in writers:
                if writer.room != room:
                    continue
                missing = [k for k, v in writer.keys.items() if snapshot.kv.get(k) != v]
                assert not missing, f"{room}: {writer.name} lost {missing}"
                lost = [t for t in writer.tokens if t not in snapshot.text]
                assert not lost, f"{room}: {writer.name} lost text {lost}"
    finally:
        await cleanup(server, clients)


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_confirmed_updates_survive_compaction_and_sigkill(tmp_path: Path) -> None:
    """Deterministic: one confirmed update per row, compaction after every 3 rows, kill -9."""
    server = ServerProcess(tmp_path / "data", env={"CRDT_SERVER_COMPACT_AFTER_UPDATES": "3"})
    clients: list[YClient] = []
    try:
        await server.start()
        client = YClient(server.ws_url, ROOMS[0])
        clients.append(client)
        await client.connect()
        await client.wait(client.synced.is_set, timeout=WAIT)
        kv = client.doc.get(MAP_NAME, type=Map)
        for n in range(7):
            kv[f"k{n}"] = str(n)
            await client.flush()
            await client.wait(client.is_confirmed, timeout=WAIT)
        assert await server.kill() == -signal.SIGKILL
        await close_client(client)

        await server.start()
        snapshot = await load_room(server, ROOMS[0])
        assert snapshot.kv == {f"k{n}": str(n) for n in range(7)}
    finally:
        await cleanup(server, clients)
