"""The shipped ``deploy/haproxy.cfg`` never logs an RSVP link's code: run as it is, with
its servers down (so the request is logged: 503), it writes ``/api/rsvp/<redacted>``."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
HAPROXY = os.environ.get("CRDT_SERVER_HAPROXY", "/usr/sbin/haproxy")
CODE = "w1.h1.SECRETSECRETSECRET0123"

# Runs Debian's haproxy, which scripts/setup-haproxy installs for every tier but the unit one.
pytestmark = pytest.mark.services


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_shipped_config_redacts_the_code(tmp_path: Path) -> None:
    if not os.access(HAPROXY, os.X_OK):
        pytest.fail(f"no haproxy at {HAPROXY} (scripts/setup-haproxy installs it)")
    port, dead = _free_port(), _free_port()
    env = {
        **os.environ,
        "CRDT_BIND": f"127.0.0.1:{port}",
        "CRDT_SERVER_1": f"127.0.0.1:{dead}",
        "CRDT_SERVER_2": f"127.0.0.1:{dead}",
    }
    out = tmp_path / "haproxy.log"
    with out.open("wb") as sink:
        proxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    answer = httpx.get(
                        f"http://127.0.0.1:{port}/api/rsvp/{CODE}?token=QUERYSECRET", timeout=5
                    )
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "haproxy never listened"
                    time.sleep(0.05)
            assert answer.status_code == 503
            while b"/api/rsvp/" not in out.read_bytes():
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.05)
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
    logged = out.read_text()
    assert "/api/rsvp/<redacted>" in logged
    assert "SECRET" not in logged, logged
    config = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert "/api/rsvp/<redacted>" in config
