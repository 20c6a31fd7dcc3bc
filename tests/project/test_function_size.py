"""No product function over 80 lines, none with a cyclomatic complexity of 25 or more
(ruff's C901, the mccabe measure): a function that long or that branched does several
things, and is split along what they are. None is left unsplit; one that had to wait would
be listed with its size, which it might not pass, and the lists only shrink."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.project.test_layers import MODULES, ROOT

MAX_FUNCTION_LINES = 80
MAX_COMPLEXITY = 24

NOT_SPLIT_YET_LINES: dict[str, int] = {}
"""Functions still over :data:`MAX_FUNCTION_LINES`, with the most lines each may have."""

NOT_SPLIT_YET_COMPLEXITY: dict[str, int] = {}
"""Functions still over :data:`MAX_COMPLEXITY`, with the most each may have."""


def _functions() -> dict[str, int]:
    """Every product function's lines (``def`` to its last line), by ``path:name`` (the
    longest of several of one name in a module)."""
    lengths: dict[str, int] = {}
    for path in MODULES:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{path.relative_to(ROOT)}:{node.name}"
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                lengths[key] = max(lengths.get(key, 0), lines)
    return lengths


def test_no_function_is_over_80_lines() -> None:
    lengths = _functions()
    long = {
        key: lines
        for key, lines in lengths.items()
        if lines > NOT_SPLIT_YET_LINES.get(key, MAX_FUNCTION_LINES)
    }
    assert not long, f"split these along what they do: {long}"
    done = [key for key in NOT_SPLIT_YET_LINES if lengths.get(key, 0) <= MAX_FUNCTION_LINES]
    assert not done, f"split now: take them off NOT_SPLIT_YET_LINES: {done}"


def test_no_function_is_as_branched_as_25() -> None:
    found = subprocess.run(
        [
            sys.executable, "-m", "ruff", "check", "--isolated", "--select", "C901",
            "--config", f"lint.mccabe.max-complexity={MAX_COMPLEXITY}",
            "--output-format", "json", "--exit-zero", "crdt_server", "documents", "storage",
        ],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    over: dict[str, int] = {}
    for row in json.loads(found):
        said = re.fullmatch(r"`(\w+)` is too complex \((\d+) > \d+\)", row["message"])
        assert said is not None, row["message"]
        over[f"{Path(row['filename']).relative_to(ROOT)}:{said[1]}"] = int(said[2])
    grown = {k: c for k, c in over.items() if c > NOT_SPLIT_YET_COMPLEXITY.get(k, MAX_COMPLEXITY)}
    assert not grown, f"split these along what they do: {grown}"
    done = [key for key in NOT_SPLIT_YET_COMPLEXITY if key not in over]
    assert not done, f"split now: take them off NOT_SPLIT_YET_COMPLEXITY: {done}"
