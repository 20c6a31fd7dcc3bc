"""The planner app's JavaScript budget (issue 53, point 7): what a first visit must load (the
page's script and every chunk it imports statically, transitively) stays under 120 KB
gzipped; the run of show's rich-text editor is a chunk of its own, loaded only by a dynamic
``import()`` when someone opens it. Read from the committed bundle: no Node, no browser."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

BUNDLE = Path(__file__).resolve().parents[2] / "crdt_server" / "edge" / "webapp_bundle"
BUDGET = 120 * 1024
_STATIC = re.compile(r'(?:from|import)\s*"\./([A-Za-z0-9_-]+\.js)"')
_DYNAMIC = re.compile(r'import\("\./([A-Za-z0-9_-]+\.js)"\)')


def _entry() -> str:
    found = re.search(r'src="/app/(app-[A-Za-z0-9]+\.js)"', (BUNDLE / "index.html").read_text())
    assert found, "index.html names no app script"
    return found.group(1)


def _static_closure(entry: str) -> list[str]:
    seen: list[str] = []
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.append(name)
        todo.extend(_STATIC.findall((BUNDLE / name).read_text()))
    return seen


def test_a_first_visit_loads_under_120_kb_of_gzipped_javascript() -> None:
    loaded = _static_closure(_entry())
    sizes = {name: len(gzip.compress((BUNDLE / name).read_bytes(), 9)) for name in loaded}
    assert sum(sizes.values()) < BUDGET, sizes


def test_the_rich_text_editor_loads_only_when_opened() -> None:
    entry = _entry()
    loaded = set(_static_closure(entry))
    lazy = {d for name in loaded for d in _DYNAMIC.findall((BUNDLE / name).read_text())}
    assert lazy, "the app imports no chunk lazily"
    assert not lazy & loaded, "a lazily imported chunk is also loaded up front"
    tiptap = [n for n in lazy if "ProseMirror" in (BUNDLE / n).read_text()]
    assert tiptap, "the editor is not in a lazy chunk"


def test_the_budget_chart_loads_only_when_the_budget_is_shown() -> None:
    """The budget's chart (issue 54, point 3) is a lazy chunk too: its SVG drawing is in
    no chunk a first visit loads."""
    loaded = set(_static_closure(_entry()))
    lazy = {d for name in loaded for d in _DYNAMIC.findall((BUNDLE / name).read_text())}
    chart = [n for n in lazy if 'data-chart="budget"' in (BUNDLE / n).read_text()]
    assert chart, "the budget chart is not in a lazy chunk"
    assert not any('data-chart="budget"' in (BUNDLE / n).read_text() for n in loaded)


def test_the_seating_chart_and_print_views_load_only_when_shown() -> None:
    """Issue 54, points 5 and 6: the chart (SVG drawing, drags) and the print views are
    chunks the app imports on demand, not part of a first visit."""
    entry = _entry()
    loaded = set(_static_closure(entry))
    lazy = {d for name in loaded for d in _DYNAMIC.findall((BUNDLE / name).read_text())}
    reached = set(lazy)
    for name in lazy:
        reached |= set(_static_closure(name))
    chart = [n for n in reached if "chart-canvas" in (BUNDLE / n).read_text()]
    printing = [n for n in reached if "escort-card" in (BUNDLE / n).read_text()]
    assert chart and printing, "the chart or the print views are not in a lazy chunk"
    assert not (set(chart) | set(printing)) & loaded, "loaded on a first visit"
