"""The fault campaign's short seeded schedules (scripts/faults, benchmarks/faults): a
cluster of namespaced hosts (PostgreSQL, Redis, two servers behind deploy/haproxy.cfg,
two client hosts with y-websocket, Hocuspocus and pycrdt writers), a server SIGKILLed, a
server cut from PostgreSQL, a server's wall clock jumped ten minutes forwards and back
(libfaketime) and a client host's link flapping; nothing acknowledged is lost, no replica
diverges, every committed update's events exist once, and the campaign leaves no
namespace, link or rule of its own behind. Needs root (network namespaces, iptables,
libfaketime: scripts/setup-faults)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("server-kill", "pg-cut", "server-clock-jump", "clients-flap")


def _ours(run_id: str) -> list[str]:
    """This run's namespaces, links and FORWARD rules still on the machine."""
    found = []
    for argv in (["ip", "netns", "list"], ["ip", "-o", "link"], ["iptables", "-w", "-S"]):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        found += [line for line in done.stdout.splitlines() if f"flt{run_id}" in line]
    return found


@pytest.mark.slow
@pytest.mark.js
@pytest.mark.timeout(300)
def test_short_seeded_schedules_lose_nothing_and_leave_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the fault campaign needs root (network namespaces, iptables)")
    report = tmp_path / "faults.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "benchmarks.faults", "--schedules", "4", "--length", "20",
            "--seed", "74", "--kinds", ",".join(KINDS), "--weddings", "2", "--writers", "3",
            "--dir", str(tmp_path / "run"), "--json", str(report),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    found = json.loads(report.read_text())
    rows = {row["kind"]: row for row in found["table"]}
    assert set(rows) == set(KINDS), output
    for row in rows.values():
        assert row["acknowledged"] > 50, output
        assert (row["lost"], row["diverged"], row["rooms_behind"]) == (0, 0, 0), output
        assert (row["duplicated_events"], row["missing_events"]) == (0, 0), output
    # Every writer kind wrote and had writes acknowledged.
    for schedule in found["schedules"]:
        assert set(schedule["longest_wait"]) == {"sync", "collab", "pycrdt"}, output
        if schedule["faults"][0]["kind"] == "clients-flap":  # the link did go down
            assert max(schedule["unavailability"].values()) >= 1.5, output
    # The jumped server's clock did jump (its Date header), its watchdog logged each jump
    # and let it run (not restarted), and tokens went by its clock.
    jumps = [json.loads(line) for f in (tmp_path / "run").glob("s?.clock.jsonl")
             for line in f.read_text().splitlines()]  # fmt: skip
    assert jumps, output
    for jump in jumps:
        assert abs(jump["server_ahead_s"] - jump["offset"]) <= 5, jumps
        assert (jump["fresh"] == "open") == (jump["offset"] > 0), jumps
    logs = "".join(f.read_text() for f in (tmp_path / "run").glob("s?.log"))
    assert "the wall clock jumped +6" in logs and "the wall clock jumped -1" in logs, output
    assert "ending the process" not in logs
    assert all(not schedule["revived"] for schedule in found["schedules"]), output
    run_id = re.search(r"^run ([0-9a-f]+):", done.stdout, re.M)
    assert run_id, output
    assert _ours(run_id[1]) == []
