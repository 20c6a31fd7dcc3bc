"""One wall clock (issue 54): no product module reads the time but ``crdt_server.clock``.

Every reader of "now" goes through :mod:`crdt_server.clock`, so a fake clock set with
``clock.use`` is what routes, extensions, timers, tables and token checks all see.
``time.monotonic`` stays allowed (durations of the process's own, see the clock's
docstring).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
CLOCK = ROOT / "crdt_server" / "clock.py"

FORBIDDEN = {
    ("time", "time"),
    ("time", "time_ns"),
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
}
"""``module_or_class.attribute`` calls that read the wall clock."""


def _sources() -> list[Path]:
    found: set[Path] = set()
    for folder in ("crdt_server", "documents", "storage"):
        for path in (ROOT / folder).rglob("*.py"):
            found.add(path.resolve())
    return sorted(p for p in found if p != CLOCK.resolve() and "node_modules" not in p.parts)


def wall_clock_reads(source: str) -> list[str]:
    """``line: call`` for each read of the wall clock in ``source`` (a module's text)."""
    tree = ast.parse(source)
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in {"time", "datetime"}:
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN:
                    imported.add(alias.asname or alias.name)
    reads = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            owner = func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if (name, func.attr) in FORBIDDEN:
                reads.append(f"{node.lineno}: {name}.{func.attr}()")
        elif isinstance(func, ast.Name) and func.id in imported:
            reads.append(f"{node.lineno}: {func.id}()")
    return reads


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    sources = _sources()
    assert len(sources) > 100, "the product's modules were not found"
    offenders = {
        str(path.relative_to(ROOT)): reads
        for path in sources
        if (reads := wall_clock_reads(path.read_text()))
    }
    assert not offenders, f"read the time through crdt_server.clock: {offenders}"


@pytest.mark.parametrize(
    "text",
    [
        "import time\nx = time.time()\n",
        "from time import time\nx = time()\n",
        "from datetime import datetime, UTC\nx = datetime.now(UTC)\n",
        "import datetime\nx = datetime.datetime.utcnow()\n",
        "from datetime import date\nx = date.today()\n",
        "from time import time as now\nx = now()\n",
    ],
)
def test_the_check_catches_each_way_of_reading_the_time(text: str) -> None:
    assert wall_clock_reads(text)


def test_the_check_leaves_monotonic_timers_and_the_clock_alone() -> None:
    text = "import time\nfrom crdt_server import clock\nx = time.monotonic()\ny = clock.now()\n"
    assert wall_clock_reads(text) == []
