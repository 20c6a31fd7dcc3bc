"""The planner app's pure parts (the activity feed's words, grouping and bookkeeping; the queue
of operations an `operate` role sends; the notice of a lost write) under Node's own test
runner: ``node --test web/test/``. No browser, no server."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
@pytest.mark.timeout(60)
def test_the_web_apps_unit_tests_pass() -> None:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--test", "web/test/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
