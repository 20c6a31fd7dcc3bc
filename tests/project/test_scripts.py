"""``./scripts/test`` starts what the tests need instead of failing without it; the scripts
a fresh clone relies on are executable."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"


def test_scripts_test_starts_the_services_before_any_test_runs() -> None:
    lines = [
        line.strip()
        for line in (SCRIPTS / "test").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    services = next(i for i, line in enumerate(lines) if "scripts/services" in line)
    pytest_line = next(i for i, line in enumerate(lines) if "-m pytest" in line)
    assert services < pytest_line
    # CI runs exactly the README's command.
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^exec scripts/test\b", ci, re.MULTILINE)


def test_the_scripts_a_fresh_clone_runs_are_executable() -> None:
    for name in (
        "bootstrap", "serve", "test", "services", "setup-js", "setup-haproxy", "setup-faults",
        "setup-kannel", "faults", "example",
    ):  # fmt: skip
        assert os.access(SCRIPTS / name, os.X_OK), name


def test_scripts_test_installs_kannel_for_the_text_message_tests() -> None:
    # The SMS tests run a real Kannel: every tier that runs them installs it first.
    script = (SCRIPTS / "test").read_text()
    assert "scripts/setup-kannel" in script
    assert "kannel kannel-extras" in (SCRIPTS / "setup-kannel").read_text()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port
    # Stop the scratch Redis this test started, by the pid it wrote, and nothing else.
    pidfile = Path(f"/var/lib/redis/ci-{port}.pid")
    if pidfile.exists():
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 15)
        deadline = time.monotonic() + 10
        while _answers(port) and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.mark.services
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="scripts/services starts services as root")
def test_scripts_services_starts_a_redis_that_is_down(free_port: int) -> None:
    assert not _answers(free_port)
    env = {**os.environ, "CRDT_TEST_REDIS_PORT": str(free_port)}
    done = subprocess.run(
        [str(SCRIPTS / "services")], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert _answers(free_port)
    # Run again with everything up: nothing to do, still success.
    again = subprocess.run(
        [str(SCRIPTS / "services")], env=env, capture_output=True, timeout=60, check=False
    )
    assert again.returncode == 0, again.stderr.decode()


def test_bootstrap_installs_only_when_what_it_installs_from_changed(tmp_path: Path) -> None:
    """``./scripts/serve`` spent most of a warm start re-running ``pip install``: the
    bootstrap now installs once per pyproject.toml, extras and Python (a stamp in .venv)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(SCRIPTS / "bootstrap", tmp_path / "scripts" / "bootstrap")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "pip.log"
    # A stand-in for the venv's Python: answers -VV, records every pip install.
    fake = bin_dir / "python"
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-VV" ]; then echo "Python 3.11.7"; exit 0; fi\n'
        f'echo "$*" >> {log}\n'
    )
    fake.chmod(0o755)
    (bin_dir / "crdt-server").write_text("#!/bin/sh\n")
    (bin_dir / "crdt-server").chmod(0o755)

    def bootstrap(extras: str = "") -> list[str]:
        env = {**os.environ, "EXTRAS": extras}
        subprocess.run([str(tmp_path / "scripts" / "bootstrap")], env=env, check=True, timeout=60)
        return log.read_text().splitlines() if log.exists() else []

    assert len(bootstrap()) == 1
    assert len(bootstrap()) == 1  # nothing changed: no install
    assert len(bootstrap("test")) == 2  # other extras: installed once
    assert len(bootstrap("test")) == 2
    assert len(bootstrap()) == 2
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '2'\n")
    assert len(bootstrap()) == 3  # pyproject.toml changed
    (tmp_path / ".venv" / ".installed").unlink()
    assert len(bootstrap()) == 4  # the documented way to force it
