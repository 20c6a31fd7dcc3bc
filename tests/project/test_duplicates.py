"""``scripts/duplicates``, the count of repeated code the project tracks: what makes a pair
(six lines of one shape), what does not (fewer lines, an idiom in more than eight places,
imports and comments), so its count moves only when the code does."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "duplicates"


def _script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("scripts_duplicates", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


def _body(first: str, second: str, lines: int) -> str:
    steps = "\n".join(f"    {first}_{i} = {second}.get('{first}{i}', {i})" for i in range(lines))
    return f"import os\n\n\ndef {first}({second}):\n    # a comment\n{steps}\n"


def _count(*texts: str) -> int:
    script = _script()
    return len(script.pairs([script.read(f"m{i}.py", text) for i, text in enumerate(texts)]))


def test_six_lines_of_one_shape_make_a_pair_and_five_do_not() -> None:
    assert _count(_body("guest", "row", 5), _body("vendor", "record", 5)) == 1  # def + 5
    assert _count(_body("guest", "row", 4), _body("vendor", "record", 4)) == 0


def test_a_run_in_more_than_eight_places_is_an_idiom() -> None:
    assert _count(*(_body(f"f{i}", "row", 8) for i in range(8))) == 28
    assert _count(*(_body(f"f{i}", "row", 8) for i in range(9))) == 0


def test_unlike_docstrings_keep_code_apart() -> None:
    head = "def f(row):\n    a = row.a\n    b = row.b\n    c = row.c\n"
    tail = "    d = row.d\n    e = row.e\n    return a + b + c + d + e\n"
    one = head + '    """A short note\n    about it."""\n' + tail
    two = head + '    """Another, longer, note\n    about what comes next, here."""\n' + tail
    assert _count(one, two) == 0
    assert _count(head + tail, head + tail) == 1


def test_the_script_counts_the_work_tree() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--count"], capture_output=True, text=True, check=True
    ).stdout
    assert int(out) > 0
