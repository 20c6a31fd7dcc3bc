"""The benchmark scripts run from the repository root as modules of the installed project
(``.venv/bin/python -m benchmarks.NAME``), with no sys.path or PYTHONPATH of their own."""

from __future__ import annotations

import ast
import asyncio
import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = (
    "run",
    "fuzz",
    "killcampaign",
    "store_bench",
    "picows_compare",
    "csv_import",
    "events_bench",
    "webhooks",
    "http_clients",
    "bus_messages",
    "kit_inprocess",
    "recorder_bench",
    "overwrites_bench",
    "product",
    "projections_bench",
    "shapes_bench",
    "conflicts_bench",
    "operations_bench",
    "app_load",
    "pushback_reach",
    "faults",
)
"""Every driver with a command line (peer_pycrdt_websocket runs in the peer's own venv)."""


def _python(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def _without_baseline_spec(text: str) -> str:
    """The source without ``servers.baseline_spec``: the one place that sets PYTHONPATH, on
    purpose, for a server run from another checkout (``ours-baseline``), never for itself."""
    tree = ast.parse(text)
    lines = text.splitlines()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "baseline_spec":
            assert node.end_lineno is not None
            del lines[node.lineno - 1 : node.end_lineno]
    return "\n".join(lines)


def test_no_benchmark_edits_the_import_path() -> None:
    for path in sorted(BENCHMARKS.glob("*.py")):
        text = _without_baseline_spec(path.read_text())
        for hack in ("sys.path", "PYTHONPATH"):
            assert hack not in text, f"{path.name} uses {hack}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_benchmark_runs_as_a_module(name: str) -> None:
    answer = _python("-m", f"benchmarks.{name}", "--help")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.startswith("usage:"), answer.stdout


@pytest.mark.parametrize("name", ("run", "fuzz", "killcampaign", "picows_compare"))
def test_run_as_a_file_says_how_to_run_it_in_one_line(name: str) -> None:
    answer = _python(str(BENCHMARKS / f"{name}.py"), "--help", cwd=BENCHMARKS)
    assert answer.returncode == 2
    assert (
        answer.stderr == f"run it from {ROOT} as: .venv/bin/python -m benchmarks.{name} [options]\n"
    )


def test_the_store_benchmark_measures_sqlite() -> None:
    answer = _python(
        "-m", "benchmarks.store_bench", "--backends", "sqlite",
        "--appends", "100", "--tasks", "4", "--processes", "1",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert re.search(r"^ *sqlite +1 +4 +100 ", answer.stdout, re.M), answer.stdout


def test_pushback_reach_measures_the_kernels_buffers_in_guest_edits() -> None:
    answer = _python("-m", "benchmarks.pushback_reach", "--weddings", "50")
    assert answer.returncode == 0, answer.stderr
    taken = re.search(r"^the kernel took ([\d,]+) guest edits \(([\d,]+) KiB", answer.stdout)
    assert taken, answer.stdout
    # Linux's default buffers hold far more than one update; each factor has its line.
    assert int(taken[1].replace(",", "")) > 100, answer.stdout
    for factor in ("4x", "8x"):
        assert re.search(rf"^{factor} 450/s over 500 writers: [\d.]+ updates/s each, pushed "
                         r"back after [\d,]+ s$", answer.stdout, re.M), answer.stdout  # fmt: skip


def test_the_documented_commands_are_the_module_form() -> None:
    documented = [
        ROOT / "README.md",
        BENCHMARKS / "README.md",
        *BENCHMARKS.glob("*.py"),
        *(ROOT / "docs").rglob("*.md"),
    ]
    for path in documented:
        for name in SCRIPTS:
            assert f"python benchmarks/{name}.py" not in path.read_text(), (path, name)


def test_ours_baseline_runs_the_other_checkouts_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ours-baseline`` once ran this repository's server under the other checkout's name:
    ``python -m`` put the working directory (this repository) first on the import path."""
    from benchmarks.servers import baseline_spec

    package = tmp_path / "crdt_server"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.setenv("BENCH_BASELINE_SRC", str(tmp_path))
    spec = baseline_spec()
    assert spec is not None
    cwd, env = spec.process_options()
    probe = "import crdt_server; print(crdt_server.__file__)"
    done = subprocess.run(
        [spec.argv[0], "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == package / "__init__.py"


@pytest.mark.asyncio
async def test_a_handshake_given_up_on_leaves_no_unretrieved_exception() -> None:
    """The load agents printed "Future exception was never retrieved" for connections whose
    handshake was given up on (274 in one scale run): a connection closed after its waiter
    had gone (e.g. a timeout inside ``create_connection``, after ``connection_made``) failed
    the handshake's future with nobody to read it."""
    from benchmarks.wsclient import RawWebSocket

    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        protocol = RawWebSocket("127.0.0.1", 9, "/r", lambda _: None)
        protocol.connection_lost(None)  # nobody awaits ``opened``
        assert protocol.opened.done() and protocol.closed.done()
        del protocol
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(None)
    assert not unretrieved, unretrieved


def test_the_recorder_benchmark_prints_both_streams() -> None:
    answer = _python(
        "-m", "benchmarks.recorder_bench", "--updates", "50", "--guests", "5", "--repeat", "1",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    rows = [line for line in answer.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["flat", "nested"], answer.stdout


def test_the_detection_benchmark_finds_its_races() -> None:
    answer = _python(
        "-m", "benchmarks.overwrites_bench", "--updates", "50", "--guests", "5", "40",
        "--repeat", "1",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    rows = [line.split("|") for line in answer.stdout.splitlines() if line.startswith("| ")]
    assert [(row[1].strip(), row[6].strip()) for row in rows[1:]] == [("5", "5"), ("40", "5")]


def test_product_updates_are_domain_changes_a_stock_client_sends() -> None:
    """Each prepared update of the product scenario is one transaction's update, and the
    documents they build read back as valid entries of the wedding schema."""
    from pycrdt import Doc

    from benchmarks.loadgen import clock_ranges
    from benchmarks.product import DOCS, domain_updates
    from crdt_server.codec.protocol import SyncUpdate, decode_message
    from crdt_server.documents.schema import read_budget, read_guests, read_timeline

    readers = {"guests": read_guests, "timeline": read_timeline, "budget": read_budget}
    for kind, _ in DOCS:
        doc: Doc[object] = Doc()
        updates = domain_updates(kind, 4242, 7)
        assert len(updates) == 7
        clock = 0
        for message, clocks in updates:
            decoded = decode_message(message)
            assert isinstance(decoded, SyncUpdate)
            update = decoded.update
            assert clock_ranges(update)[4242] == (clock, clock + clocks)
            clock += clocks
            doc.apply_update(update)
        read = readers[kind](doc)
        assert not read.problems, read.problems


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_product_scenario_runs_tiny(tmp_path: Path) -> None:
    """The product scenario at a few seconds on our server: both steps run, nothing is lost
    or missing, every room holds every writer's clocks, every webhook event is delivered
    (whether a step was sustained is timing, never asserted)."""
    out = tmp_path / "product.json"
    argv = [sys.executable, "-m", "benchmarks.run", "--product", "--tiny", "--keep-going"]
    argv += ["--servers", "ours"]
    done = subprocess.run(
        [*argv, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=170
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| server | sustained updates/s" in done.stdout
    assert "load average" in done.stdout and "server python[" in done.stdout
    ours = json.loads(out.read_text())["ours"]
    assert [s["rate"] for s in ours["steps"]] == [20.0, 40.0]
    assert all(s["sent"] > 0 and s["lost"] == 0 and s["missing"] == 0 for s in ours["steps"])
    # How many updates each room commit held (each at least one; how many is timing).
    assert all(s["updates_per_commit"] >= 1.0 for s in ours["steps"]), ours["steps"]
    assert "updates per room commit" in done.stdout
    # The projected reader: a vendor's copy of the guest list follows the probe, no contact.
    assert all(s["projected_probes"] > 0 for s in ours["steps"]), ours["steps"]
    assert "projected reader" in done.stdout and "PROJECTION LEAK" not in done.stdout
    assert ours["verified"] == "12 of 12 rooms hold every writer's clocks"
    hooks = ours["webhooks"]
    assert hooks["webhooks: webhook events not delivered 120 s after it"] == 0, hooks
    assert ours["memory"]["connections"] == 40 and ours["memory"]["after_kib"] > 0
    cold = ours["cold_start"]  # stopped, started on the same data, every member back
    assert cold["exit_code"] == 0 and cold["synced"] == cold["connections"] == 40, cold
    assert 0 < cold["listening_seconds"] <= cold["serving_seconds"], cold
    assert cold["verified"] == "12 of 12 rooms hold every writer's clocks", cold


@pytest.mark.timeout(120)
def test_the_product_scenario_fails_when_a_server_does_not_start() -> None:
    """A server that exits before it listens measured nothing: the run says so and exits
    non-zero (an unset goal is not a met one)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["CRDT_SERVER_RATE_READ_PER_MINUTE"] = "not a number"  # refused by serve at start
    argv = [sys.executable, "-m", "benchmarks.product", "--tiny", "--servers", "ours"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[ours] failed: ours exited early" in done.stdout
    assert "failed: ours" in done.stderr


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_product_overload_runs_tiny(tmp_path: Path) -> None:
    """``--overload`` at a few seconds: the steps find a sustainable rate, both bursts run at
    4x and 8x it with the quiet wedding probed, nothing is lost and every room holds every
    writer's clocks (whether a goal is met is timing, never asserted)."""
    out = tmp_path / "overload.json"
    argv = [sys.executable, "-m", "benchmarks.product", "--tiny", "--overload", "--servers"]
    argv += ["ours", "--burst-seconds", "2", "--recovery-seconds", "2", "--sustain-p99-ms"]
    argv += ["100000", "--quiet-interval", "0.2", "--json", str(out)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=230)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ours = json.loads(out.read_text())["ours"]
    sustained = max(s["rate"] for s in ours["steps"] if s["ok"])
    bursts = ours["overload"]
    assert [(b["factor"], b["rate"]) for b in bursts] == [
        (4.0, 4 * sustained),
        (8.0, 8 * sustained),
    ], bursts
    for b in bursts:
        assert b["sent"] > 0 and b["lost"] == 0 and b["missing"] == 0, b
        assert b["acknowledged_per_s"] > 0 and b["quiet_p99"] is not None, b
        # The quiet wedding's rate beside each busy wedding's (4 weddings in --tiny).
        assert b["quiet_rate"] == 5.0 and b["wedding_rate"] == b["rate"] / 4, b
        assert set(b["goals"]) >= {"acknowledged >= 0.9x sustainable", "quiet echo p99 < 100 ms"}
    assert ours["verified"] == "12 of 12 rooms hold every writer's clocks"
    assert "| server | burst | acknowledged /s" in done.stdout
    assert ours["cold_start"] is None  # not in this mode


def test_product_members_split_and_presets() -> None:
    """A wedding's members split 5:3:2 over its documents (10 exactly as before); a preset
    fills only the options not given."""
    from benchmarks.product import DOCS, docs_for, parse

    assert DOCS == docs_for(10) == (("guests", 5), ("timeline", 3), ("budget", 2))
    assert docs_for(50) == (("guests", 25), ("timeline", 15), ("budget", 10))
    assert all(sum(n for _, n in docs_for(m)) == m for m in range(3, 200))
    saturday, _ = parse(["--saturday", "--weddings", "4"])
    assert (saturday.weddings, saturday.members, saturday.keep_going) == (4, 50, True)
    assert saturday.rates == [250.0, 500.0, 1000.0, 2500.0]
    assert saturday.title == "Saturday burst"
    plain, _ = parse(["--members", "20"])
    assert (plain.weddings, plain.members, plain.keep_going) == (1000, 20, False)
    assert not plain.overload
    overload, _ = parse(["--overload", "--weddings", "200", "--burst-seconds", "10"])
    assert overload.overload and overload.servers == ["ours"] and overload.weddings == 200
    assert overload.rates[0] < 500 < overload.rates[-1] and overload.step_seconds == 10.0
    assert (overload.burst_seconds, overload.recovery_seconds) == (10.0, 15.0)
    assert overload.quiet_interval == 0.1


def test_the_shape_benchmark_prints_one_row_per_document() -> None:
    answer = _python(
        "-m", "benchmarks.shapes_bench", "--members", "3", "--updates", "10", "--repeat", "1",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    rows = [line.split("|") for line in answer.stdout.splitlines() if line.startswith("| ")]
    assert [row[1].strip() for row in rows[1:]] == ["guests", "timeline", "budget"]
    assert all(int(row[2]) == 30 for row in rows[1:]), answer.stdout


@pytest.mark.slow  # load-shaped: a server under a scenario's load for seconds
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_the_multiplex_scenario_runs_tiny_on_both_paths(tmp_path: Path) -> None:
    """The multiplexed-socket row at a tiny size on ours: a wedding's four documents on one
    ``/collab`` socket (``ours-collab``) and on four ``/sync`` sockets (``ours``); every
    wedding syncs and every reader gets every update (Hocuspocus itself runs the same
    scenario when benchmarks/node is installed)."""
    from benchmarks import loadgen
    from benchmarks.servers import ServerProcess, server_specs

    specs = server_specs()
    for name, sockets in (("ours-collab", 1), ("ours", 4)):
        spec = specs[name]
        async with ServerProcess(spec, tmp_path / name) as server:
            target = loadgen.Target(
                server.host, server.port, server.pid, spec.dialect, collab_path=spec.collab_path
            )
            metrics = await loadgen.multiplex(
                target, sockets=4, readers=2, rate=20.0, duration=0.5, settle=0.0
            )
        shown = {m.name: m.value for m in metrics}
        assert shown["multiplex 4 docs: sockets per wedding"] == sockets, shown
        assert shown["multiplex 4 docs: failed weddings (of 4)"] == 0, shown
        missing = "multiplex 4 docs: fan-out to 2 readers: missing deliveries (of 20)"
        assert shown[missing] == 0, shown
        assert shown["multiplex 4 docs: server RSS KiB per wedding (4 documents)"] is not None


@pytest.mark.slow  # load-shaped: a server under a scenario's load for seconds
@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_the_multiplex_span_variant_runs_tiny_on_two_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The multiplex variant on ``ours-collab-2workers`` (its own Redis here) at a tiny size:
    apps holding two weddings' documents, one wedding owned by each worker, on a
    ``/collab/{w}`` socket each and then on one bare ``/collab`` socket; every app syncs
    and every reader gets every update both ways."""
    from benchmarks import loadgen
    from benchmarks.servers import ServerProcess, server_specs
    from tests.cluster.conftest import RedisProcess

    redis = RedisProcess()
    await redis.start()
    try:
        monkeypatch.setenv("BENCH_REDIS_URL", redis.url)
        spec = server_specs()["ours-collab-2workers"]
        async with ServerProcess(spec, tmp_path / spec.name) as server:
            target = loadgen.Target(
                server.host, server.port, server.pid, spec.dialect, collab_path=spec.collab_path
            )
            metrics = await loadgen.multiplex(
                target, sockets=4, readers=2, rate=20.0, duration=0.5, settle=0.0, span=2
            )
    finally:
        await redis.stop()
    shown = {m.name: m.value for m in metrics}
    for way, sockets in (("/collab/{w} per wedding", 2), ("bare /collab spanning the owners", 1)):
        label = f"multiplex 4 docs x 2 weddings, {way}"
        assert shown[f"{label}: sockets per app"] == sockets, shown
        assert shown[f"{label}: failed apps (of 4)"] == 0, shown
        assert shown[f"{label}: 4 apps, all documents synced p99 ms"] is not None, shown
        fan = f"{label}: fan-out to 2 readers"
        assert shown[f"{fan}: missing deliveries (of 20)"] == 0, shown
        assert shown[f"{fan}: delivery latency p99 ms"] is not None, shown
        assert shown[f"{fan}: server CPU ms per update (all processes)"], shown


@pytest.mark.slow  # load-shaped: a server under a scenario's load for seconds
@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_the_overload_scenario_runs_tiny(tmp_path: Path) -> None:
    """The overload row at a tiny size on ours: both bursts run, every row has a figure,
    and every room converges."""
    from benchmarks import loadgen
    from benchmarks.servers import ServerProcess, server_specs

    spec = server_specs()["ours"]
    async with ServerProcess(spec, tmp_path / "ours") as server:
        target = loadgen.Target(server.host, server.port, server.pid, spec.dialect)
        metrics = await loadgen.overload(
            target, rooms=2, writers=2, sustainable=20.0, duration=1.0, recovery_window=10.0
        )
    shown = {m.name: m.value for m in metrics}
    assert shown["overload 2x2: rooms converged (of 2)"] == 2, shown
    for factor, rate in (("4x", 80), ("8x", 160)):
        step = f"overload 2x2 at {factor} ({rate}/s offered)"
        assert shown[f"{step}: acknowledged updates/s (echoed inside the burst)"], shown
        assert shown[f"{step}: quiet wedding echo p99 ms"] is not None, shown
        assert shown[f"{step}: recovery s (quiet echo back under 100 ms)"] is not None, shown


@pytest.mark.slow  # load-shaped: a server under a scenario's load for seconds
@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_the_coldrooms_scenario_runs_tiny(tmp_path: Path) -> None:
    """The cold restart with many rooms at a tiny size on ours: every room reconnects after
    the restart and its first sync step 2 holds every update written before it."""
    from benchmarks.coldrooms import coldrooms
    from benchmarks.loadgen import Target
    from benchmarks.servers import ServerProcess, server_specs

    spec = server_specs()["ours"]
    async with ServerProcess(spec, tmp_path / "ours") as server:
        target = Target(server.host, server.port, server.pid, spec.dialect)

        async def restart() -> None:
            await server.restart()
            target.host, target.port, target.pid = server.host, server.port, server.pid

        target.restart = restart
        metrics = await coldrooms(target, rooms=3, updates=5, members=2)
    shown = {m.name: m.value for m in metrics}
    assert shown["coldrooms 3 rooms: rooms whose step 2 had every update"] == 3, shown
    assert shown["coldrooms 3 rooms: failed connections"] == 0, shown
    assert shown["coldrooms 3 rooms: reconnect to synced p99 ms"] is not None, shown
