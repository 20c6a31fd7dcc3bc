"""The planner app's pure parts (the activity feed's words, grouping and bookkeeping; the queue
of operations an `operate` role sends; the notice of a lost write) under Node's own test
runner: ``node --test web/test/``. No browser, no server, but Node and the app's packages
(``web/node_modules``, installed by ``scripts/setup-js``): marked ``js``, so the unit tier
(``scripts/test --unit``) leaves it out and the other tiers fail loudly without Node."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.tier import needs_node

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.js
@pytest.mark.timeout(60)
def test_the_web_apps_unit_tests_pass() -> None:
    needs_node("web/test/")
    node = shutil.which("node")
    assert node is not None, "Node.js is not on PATH: install Node >= 18 to run web/test/"
    assert (ROOT / "web" / "node_modules" / "yjs").is_dir(), (
        "web/node_modules is missing: run scripts/setup-js"
    )
    done = subprocess.run(
        [node, "--test", "web/test/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
