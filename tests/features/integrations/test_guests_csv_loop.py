"""What a guest import of the documented maximum (20,000 rows) costs every other wedding:
a real server, a thread polling ``/healthz`` every 10 ms while the file is imported. Before
the import was planned and written off the loop and taken in by parts, the loop was held
5.4 s in one piece (in one process, a 5 ms ticker on the server's own loop); now another
wedding waits at most about one part; likewise the restore point taken after it (the log
replayed and compared on a worker thread) and loading that room again after a restart
(replayed and indexed on a worker thread), and its JSON view (made on a copy on a worker
thread). The figures are printed (``-s``) and recorded
in ``docs/performance/``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from crdt_server.features.integrations.domain_guests_csv import MAX_ROWS
from crdt_server.testing.tokens import TokenMinter, new_secret
from crdt_server.testing.waits import until
from tests.healthz import measured, polling
from tests.server import FreshWedding, ServerProcess

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

MINT = TokenMinter(new_secret())
WEDDING = FreshWedding("csvloop")
IMPORT_P99 = 1.0
"""The bound another wedding's /healthz p99 is kept under here (seconds). The goal, 0.1 s
on a quiet 2-core machine, is measured and recorded; this bound is far above it so that a
loaded test machine passes, and far below what the import cost whole (5.4 s)."""


@pytest.fixture(autouse=True)
def fresh_wedding() -> None:
    WEDDING.renew()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    env = {
        **MINT.env,
        "CRDT_SERVER_RATE_WRITE_PER_MINUTE": "0",
        # The restore point after the import is taken within the measured window.
        "CRDT_SERVER_VERSION_CHECK_SECONDS": "1",
        "CRDT_SERVER_VERSION_INTERVAL_SECONDS": "1",
    }
    async with ServerProcess(
        tmp_path_factory.mktemp("csvloop") / "data", env=env, anonymous=False
    ) as proc:
        yield proc


def sheet(rows: int) -> bytes:
    """``rows`` new guests, the columns a couple's spreadsheet has."""
    lines = ["name,rsvp,side,meal"]
    lines += [f"Guest {i},accepted,partner_a,fish" for i in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


def auth() -> dict[str, str]:
    return MINT.headers("planner", "ada", WEDDING.id)


async def point_after(http: httpx.AsyncClient) -> bool:
    """Whether the guest list's newest restore point holds its newest update."""
    history = await http.get(WEDDING.at("/docs/guests/history"), headers=auth())
    newest = max((h["seq"] for h in history.json()["history"]), default=0)
    points = await http.get(WEDDING.at("/docs/guests/versions"), headers=auth())
    return points.status_code == 200 and any(p["seq"] >= newest for p in points.json()["versions"])


@pytest.mark.timeout(300)  # a 20,000-row import: 53 to 83 s on 2 shared cores
async def test_importing_the_largest_file_holds_no_other_wedding(server: ServerProcess) -> None:
    body = sheet(MAX_ROWS)
    answers: list[httpx.Response] = []
    with polling(server.url) as poller:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:

            async def run() -> None:
                answers.append(
                    await http.post(
                        WEDDING.at("/guests.csv"),
                        content=body,
                        headers={**auth(), "Content-Type": "text/csv"},
                    )
                )
                # What follows the import: its restore point, replayed and compared with
                # the one before (the version keeper), within the window too.
                await until(lambda: point_after(http), 120, every=0.25)

            figures = await measured(poller, f"guest import of {MAX_ROWS} rows", run)
            guests = (await http.get(WEDDING.at("/docs/guests"), headers=auth())).json()
            history = await http.get(
                WEDDING.at("/docs/guests/history"), params={"limit": 1000}, headers=auth()
            )
            imported = await http.get(
                WEDDING.at("/events"),
                params={"types": "integration.guests_imported"},
                headers=auth(),
            )
    print(json.dumps({"server_alive_after": server.alive}))
    assert server.alive  # the watchdog never fired
    answer = answers[0]
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["committed"] and len(answer.json()["added"]) == MAX_ROWS
    assert len(guests["guests"]) == MAX_ROWS
    # Written in parts, each credited to the importer; one event says it was one import.
    entries: list[dict[str, Any]] = history.json()["history"]
    assert len(entries) > 1 and {(h["sub"], h["role"]) for h in entries} == {("ada", "planner")}
    [event] = imported.json()["events"]
    assert event["data"] == {
        "doc": "guests",
        "rows": MAX_ROWS,
        "added": MAX_ROWS,
        "changed": 0,
        "unchanged": 0,
    }
    assert figures["healthz_p99_ms"] < 1000 * IMPORT_P99, figures

    # Loading the room again (after a restart) replays and indexes those 20,000 guests
    # off the loop too: it held the loop 5 to 10 s in one piece.
    await server.restart()
    binary = {**auth(), "Accept": "application/octet-stream"}
    with polling(server.url) as poller:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:

            async def load() -> None:
                answer = await http.get(WEDDING.at("/docs/guests"), headers=binary)
                assert answer.status_code == 200 and len(answer.content) > MAX_ROWS

            loaded = await measured(poller, f"loading a room of {MAX_ROWS} guests", load)
    assert server.alive
    assert loaded["healthz_p99_ms"] < 1000 * IMPORT_P99, loaded

    # Its JSON view is made on a copy on a worker thread: on the loop it held every other
    # wedding 1.26 s for these 20,000 guests (load 1), about 3 s at load 8.
    shown: list[dict[str, Any]] = []
    with polling(server.url) as poller:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:

            async def view() -> None:
                answer = await http.get(WEDDING.at("/docs/guests"), headers=auth())
                assert answer.status_code == 200
                shown.append(answer.json())

            viewed = await measured(poller, f"the JSON view of {MAX_ROWS} guests", view)
    assert server.alive
    assert len(shown[0]["guests"]) == MAX_ROWS
    assert viewed["healthz_p99_ms"] < 1000 * IMPORT_P99, viewed

    # Restoring the list as it was after the import's first part removes all the other
    # guests: one change of deletions, taken in by parts like the import's additions.
    first = min(h["seq"] for h in entries)
    restored: list[httpx.Response] = []
    with polling(server.url) as poller:
        async with httpx.AsyncClient(base_url=server.url, timeout=300) as http:

            async def restore() -> None:
                restored.append(
                    await http.post(
                        WEDDING.at("/docs/guests/restore"), json={"seq": first}, headers=auth()
                    )
                )

            removed = await measured(poller, "a restore removing most of them", restore)
            after = (await http.get(WEDDING.at("/docs/guests"), headers=auth())).json()
    assert server.alive
    assert restored[0].status_code == 200, restored[0].text[:300]
    assert 0 < len(after["guests"]) < MAX_ROWS / 10
    assert removed["healthz_p99_ms"] < 1000 * IMPORT_P99, removed
