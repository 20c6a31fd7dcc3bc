"""The app and the server read a wall clock in the wedding's zone the same way (issue 54,
point 4): for every quarter hour of each day a zone changes its offset in 2026 and 2027 (the
skipped and the repeated hours included), the app's ``zonedTime`` (web/src/model.js, in Node,
with its ICU zone data) writes what the server's ``in_zone`` (zoneinfo over ``tzdata``)
writes. Marked ``js``: the unit tier runs without Node."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from crdt_server.documents.model import in_zone
from tests.tier import needs_node

ROOT = Path(__file__).resolve().parents[2]
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Europe/Dublin",  # its winter time is the negative "daylight saving" of the database
    "Australia/Lord_Howe",  # a half-hour change
    "America/Santiago",
    "Pacific/Chatham",
    "Asia/Kolkata",  # no change at all: its days are tried at noon only
)
NODE = """
const { zonedTime } = await import(process.argv[1])
let input = ''
for await (const chunk of process.stdin) input += chunk
const out = JSON.parse(input).map(([day, hhmm, zone]) => zonedTime(day, hhmm, zone))
process.stdout.write(JSON.stringify(out))
"""


def change_days(zone: str) -> list[date]:
    """The days of 2026 and 2027 whose offset at noon differs from the next day's."""
    tz = ZoneInfo(zone)
    found = []
    day = date(2026, 1, 1)
    while day.year < 2028:
        noon = datetime.combine(day, time(12), tz)
        if noon.utcoffset() != (noon + timedelta(days=1)).utcoffset():
            found += [day, day + timedelta(days=1)]
        day += timedelta(days=1)
    return found


@pytest.mark.js
@pytest.mark.timeout(60)
def test_the_app_and_the_server_write_the_same_offset_on_every_change_day() -> None:
    needs_node("web/src/model.js")
    node = shutil.which("node")
    assert node is not None, "Node.js is not on PATH: install Node >= 18"
    cases: list[tuple[str, str, str]] = []
    for zone in ZONES:
        days = change_days(zone)
        if not days:
            cases.append(("2026-06-12", "12:00", zone))
        for day in days:
            for minutes in range(0, 24 * 60, 15):
                cases.append((day.isoformat(), f"{minutes // 60:02d}:{minutes % 60:02d}", zone))
    assert len(cases) > 12 * 96  # each changing zone has at least two change days a year
    done = subprocess.run(
        [node, "--input-type=module", "-e", NODE, str(ROOT / "web" / "src" / "model.js")],
        input=json.dumps(cases),
        cwd=ROOT / "web",
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads(done.stdout)
    differ = [
        (case, app, server)
        for case, app in zip(cases, written, strict=True)
        if app != (server := in_zone(f"{case[0]}T{case[1]}", case[2]))
    ]
    assert differ == [], differ[:5]
    # And each is the instant it says: the zone's own offset at that moment.
    for text in written[:: len(written) // 50]:
        moment = datetime.fromisoformat(text)
        zone = ZoneInfo(cases[written.index(text)][2])
        assert moment.utcoffset() == moment.astimezone(UTC).astimezone(zone).utcoffset()
