"""The Node load client of ``benchmarks/`` (``run.py --client node``, benchmarks/node/
loadclient.mjs), run briefly against our server on both of its socket dialects: every client
applies what it receives, every update is echoed to its sender, every room converges."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from benchmarks import nodeclient
from benchmarks.loadgen import Metric, Target
from benchmarks.servers import NODE_DIR, ServerProcess, server_specs
from tests.jsclient import JS_DIR
from tests.tier import needs_node

pytestmark = [pytest.mark.js, pytest.mark.asyncio]


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The client's script where it finds ``ws`` and ``yjs``: benchmarks/node after its
    ``npm ci``, else a copy beside the interop tests' packages (scripts/setup-js installs
    those; the same yjs 13.6 and a ws 8), so this test needs no peer server's packages."""
    needs_node("the benchmarks' Node load client")
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: install Node.js >= 18 (scripts/setup-js)")
    if nodeclient.node_client_ready():
        return nodeclient.SCRIPT
    modules = JS_DIR / "node_modules"
    if not all((modules / p / "package.json").is_file() for p in ("ws", "yjs")):
        pytest.fail(
            f"neither {NODE_DIR}/node_modules nor {modules} has ws and yjs: run scripts/setup-js"
        )
    copy = tmp_path / "node" / nodeclient.SCRIPT.name
    copy.parent.mkdir()
    shutil.copy(nodeclient.SCRIPT, copy)
    (copy.parent / "node_modules").symlink_to(modules)
    monkeypatch.setattr(nodeclient, "SCRIPT", copy)
    return copy


def _value(metrics: list[Metric], suffix: str) -> float | None:
    (metric,) = [m for m in metrics if m.name.endswith(suffix)]
    return metric.value


@pytest.mark.timeout(120)
@pytest.mark.parametrize("server", ["ours", "ours-collab"])
async def test_node_clients_write_read_and_converge(
    server: str, script: Path, tmp_path: Path
) -> None:
    spec = server_specs()[server]
    async with ServerProcess(spec, tmp_path / "run") as process:
        target = Target(process.host, process.port, process.pid, spec.dialect)
        target.collab_path = spec.collab_path
        async with asyncio.timeout(90):
            metrics = await nodeclient.throughput(
                target, rooms=2, writers=3, duration=1.0, window=4, drain=20.0, settle=20.0
            )
            fanned = await nodeclient.fanout(target, readers=3, rate=20.0, duration=1.0)
    assert _value(metrics, "rooms converged (of 2)") == 2
    accepted = _value(metrics, "updates accepted/s (echoed to sender)")
    assert accepted is not None and accepted > 0
    per_update = _value(metrics, "server CPU ms per accepted update")
    assert per_update is not None and per_update > 0
    # Every reader received each of the writer's 20 updates.
    assert _value(fanned, "missing deliveries (of 60)") == 0
    p99 = _value(fanned, "delivery latency p99 ms")
    assert p99 is not None and p99 > 0
