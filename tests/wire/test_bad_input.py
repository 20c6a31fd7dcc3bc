"""Each bad frame gets its documented close code, changes nothing, and hurts nobody else."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from pycrdt import Doc, Map, Text

from crdt_server.codec.protocol import encode_awareness, encode_update, write_var_uint
from tests.server import ServerProcess
from tests.yclient import YClient

MAX_MESSAGE = 64 * 1024


def _update_frame_of(update: bytes) -> bytes:
    return encode_update(update)


def _real_update() -> bytes:
    doc: Doc[Text] = Doc()
    doc.get("notes", type=Text).insert(0, "hello")
    return doc.get_update()


def _awareness(state: bytes) -> bytes:
    return encode_awareness(
        b"\x01" + write_var_uint(7) + b"\x01" + write_var_uint(len(state)) + state
    )


REAL = _real_update()

CASES: list[tuple[str, bytes | str, int]] = [
    ("text frame", "hello", 1003),
    ("empty frame", b"", 1007),
    ("unknown message type", b"\x07", 1007),
    ("unknown sync type", b"\x00\x09\x00", 1007),
    ("truncated sync payload", b"\x00\x02\x05ab", 1007),
    ("trailing bytes", encode_update(REAL) + b"\x00", 1007),
    ("varuint never ends", b"\x00\x02" + b"\xff" * 12, 1007),
    ("garbage update", encode_update(b"\x05\x11\x99\x00\x00\x00\x01"), 1007),
    ("truncated real update", encode_update(REAL[:-3]), 1007),
    ("a billion clients header", encode_update(b"\xff\xff\xff\xff\x03\x00"), 1007),
    ("2**40 structs header", encode_update(b"\x01\x80\x80\x80\x80\x80\x20\x01\x00"), 1007),
    ("update with bad utf-8", encode_update(REAL.replace(b"hello", b"h\xffllo")), 1007),
    ("awareness not json", _awareness(b"{nope"), 1007),
    ("awareness state is a list", _awareness(b"[1,2]"), 1007),
    ("awareness state too big", _awareness(b'{"a":"' + b"x" * 20000 + b'"}'), 1008),
    ("awareness nested 100 deep", _awareness(b'{"a":' + b"[" * 100 + b"]" * 100 + b"}"), 1007),
    ("state vector claiming 2**29 clients", bytes.fromhex("000005ffffffff01"), 1007),
    ("oversized frame", encode_update(b"\x00" * (MAX_MESSAGE + 10)), 1009),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def small_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    """One server for every bad frame: each case uses rooms of its own and checks that the
    server is alive and its history unchanged, so the next case starts from a sound server."""
    env = {"CRDT_SERVER_MAX_MESSAGE_BYTES": str(MAX_MESSAGE)}
    async with ServerProcess(tmp_path_factory.mktemp("bad-input") / "data", env=env) as proc:
        yield proc


def _row_count(data_dir: Path, room: str) -> int:
    """The stored updates of one room (the server writes other rooms' documents, such as the
    conflicts document, on its own schedule)."""
    with sqlite3.connect(data_dir / "crdt.sqlite3") as db:
        (count,) = db.execute("SELECT count(*) FROM history WHERE doc = ?", (room,)).fetchone()
    return int(count)


async def _snapshot(server: ServerProcess, room: str) -> bytes:
    async with YClient(server.ws_url, room) as client:
        await client.wait(client.synced.is_set)
        return client.doc.get_update()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("frame", "code"), [(f, c) for _, f, c in CASES], ids=[n for n, _, _ in CASES]
)
async def test_bad_frame_is_refused_and_costs_nothing(
    small_server: ServerProcess, frame: bytes | str, code: int
) -> None:
    server = small_server
    wedding = f"bad-{uuid.uuid4().hex[:12]}"
    room, other_room = f"{wedding}/guests", f"{wedding}-other/guests"
    async with YClient(server.ws_url, room) as writer, YClient(server.ws_url, other_room) as other:
        await writer.wait(writer.synced.is_set)
        writer.doc.get("guests", type=Map)["g1"] = {"name": "Ada"}
        await writer.flush()
        await writer.wait(writer.is_confirmed)
        before = await _snapshot(server, room)
        rows_before = _row_count(server.data_dir, room)

        async with YClient(server.ws_url, room) as attacker:
            await attacker.wait(attacker.synced.is_set)
            await attacker.send_raw(frame)
            await attacker.wait(attacker.closed.is_set)
            assert attacker.close_code == code

        assert server.alive
        assert await _snapshot(server, room) == before
        assert _row_count(server.data_dir, room) == rows_before
        # The room and another room keep working for everybody else.
        other.doc.get("guests", type=Map)["g2"] = "Bo"
        await other.flush()
        await other.wait(other.is_confirmed)
        writer.doc.get("guests", type=Map)["g3"] = "Cy"
        await writer.flush()
        await writer.wait(writer.is_confirmed)
        assert not writer.closed.is_set() and not other.closed.is_set()


@pytest.mark.asyncio
async def test_invalid_names_are_refused_at_the_upgrade(server: ServerProcess) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    for path in ["w1/unknown", "bad%20id/guests", "w1/guests/extra", "-w1/guests", "w1"]:
        with pytest.raises(InvalidStatus) as info:
            async with connect(f"{server.ws_url}/{path}"):
                pass
        assert info.value.response.status_code == 404, path
