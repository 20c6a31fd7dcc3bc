"""The tests' fork server (:mod:`crdt_server.testing.forkserver`): a forked child is a
separate process that runs ``python -m MODULE ARGS`` with the caller's environment,
directory, umask and streams, reports its exit code or signal, and is killed past a
timeout; the fork server takes its children with it when its caller goes."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crdt_server.testing import forkserver
from crdt_server.testing.server import ServerProcess

pytestmark = pytest.mark.timeout(60)

PROBE = "tests.testing.fork_probe"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("fork", ["1", "0"])
def test_a_child_sees_the_callers_setting_directory_umask_limits_and_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fork: str
) -> None:
    monkeypatch.setenv("CRDT_TEST_FORK", fork)
    old = os.umask(0o027)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, hard))
    try:
        code, out, err = forkserver.run(
            PROBE,
            ["3", "x y"],
            env={**os.environ, "FORK_PROBE": "seen", "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            input=b"given",
            timeout=30,
        )
    finally:
        os.umask(old)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    seen = json.loads(out)
    assert code == 3 and err == b"to stderr\n"
    assert seen["pid"] != os.getpid() and seen["cwd"] == str(tmp_path)
    assert seen["umask"] == 0o027 and seen["setting"] == "seen"
    assert seen["stdin"] == "given" and seen["argv"] == ["3", "x y"]
    assert seen["open_files"] == [200, hard]


def test_a_forked_child_is_its_own_process_and_killed_like_one() -> None:
    child = forkserver.spawn(
        PROBE, ["wait"], env=dict(os.environ), cwd=ROOT, stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    seen = json.loads(child.stdout.readline())
    assert seen["pid"] == child.pid and seen["ppid"] not in (os.getpid(), 1)
    assert child.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(0.1)
    child.kill()
    assert child.wait(20) == -signal.SIGKILL
    child.stdout.close()
    child.kill()  # reaped: nothing is sent to a PID that may be another process's now


def test_a_child_past_its_timeout_is_killed() -> None:
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        forkserver.run(PROBE, ["wait"], env=dict(os.environ), cwd=ROOT, timeout=1)
    assert time.monotonic() - began < 30


def test_the_fork_server_ends_with_its_caller_and_takes_its_children() -> None:
    """A caller that ends without stopping its child (a crashed test process) leaves no
    process behind: its fork server kills the children it forked, then exits."""
    script = (
        "import os, subprocess, sys\n"
        "from crdt_server.testing import forkserver\n"
        f"child = forkserver.spawn({PROBE!r}, ['wait'], env=dict(os.environ),"
        " stdout=subprocess.PIPE)\n"
        "child.stdout.readline()\n"
        "print(child.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=30, check=True
    )
    pid = int(done.stdout)
    deadline = time.monotonic() + 20
    while _alive(pid):
        assert time.monotonic() < deadline, f"child {pid} outlived its caller"
        time.sleep(0.05)  # polling another process's state: nothing to wait on


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie whose parent has not reaped it yet is gone for every purpose here.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_forked_server_starts_serves_and_stops(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data") as server:
        assert isinstance(server.process, forkserver.ForkedProcess)
        assert server.alive
    assert not server.alive and "crdt-server listening" in server.log_text()
