"""The scale profile of ``benchmarks/`` (issue 22): its hand-made updates are pycrdt's, and
a tiny run of it completes with every update delivered. Timings are never asserted here;
they belong to ``benchmarks/README.md``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.loadgen import process_tree, text_updates
from benchmarks.scale import char_update, hist_percentile, record

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("client_id", [7, 300, 1_000_000, 7_500_123])
def test_hand_made_updates_are_the_ones_pycrdt_makes(client_id: int) -> None:
    made = text_updates(client_id, 30)
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    assert [char_update(client_id, i, alphabet[i % 26]) for i in range(30)] == list(made)


def test_histogram_percentiles_are_nearest_rank_at_a_tenth_of_a_millisecond() -> None:
    hist: Counter[int] = Counter()
    assert hist_percentile(hist, 99) is None
    for ms in range(1, 101):
        record(hist, ms / 1000.0 + 0.00001)
    assert hist_percentile(hist, 50) == pytest.approx(50.1)
    assert hist_percentile(hist, 99) == pytest.approx(99.1)


def test_process_tree_includes_child_processes() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in process_tree(os.getpid())
    finally:
        child.kill()
        child.wait(10)


@pytest.mark.slow
def test_tiny_scale_run_delivers_everything(tmp_path: Path) -> None:
    """Every target but the multi-process ones (those need Redis), at a few seconds each,
    against our server only: the run succeeds and loses nothing."""
    out = tmp_path / "scale.json"
    argv = [sys.executable, "-m", "benchmarks.run", "--scale", "--tiny"]
    argv += ["--servers", "ours", "--repeat", "1", "--workers", "1"]
    argv += ["--targets", "connections,durable,presence,burst", "--json", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| metric | goal | ours |" in done.stdout
    runs = json.loads(out.read_text())["runs"]["ours"]
    zero = [k for k in runs if "missing" in k or "lost" in k or "failed" in k or "closed" in k]
    assert len(zero) >= 8
    assert all(runs[k] == [0] for k in zero), {k: runs[k] for k in zero}


@pytest.mark.parametrize("state", ['{"t": 12.5, "cursor": 1}', '{"t":12.5,"cursor":1}', "null"])
def test_awareness_send_time_is_read_from_python_and_javascript_json(state: str) -> None:
    from benchmarks.scale import awareness_entries
    from crdt_server.codec.protocol import write_var_string, write_var_uint

    payload = write_var_uint(1) + write_var_uint(42) + write_var_uint(7) + write_var_string(state)
    sent = None if state == "null" else 12.5
    assert awareness_entries(payload) == [(42, 7, sent)]
