"""The core's modules import each other without a circle, counting the imports made only
for type checking (``if TYPE_CHECKING:``): the hooks see rooms and connections through
the views of :mod:`crdt_server.core.views`, never by importing the room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "crdt_server" / "core"


def _imports(path: Path, core: Path = CORE) -> set[str]:
    """The modules of ``crdt_server.core`` that ``path`` imports anywhere (top level,
    inside functions, under ``TYPE_CHECKING``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.level:
                raise AssertionError(f"{path.name}: relative import of {node.module}")
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["crdt_server", "core"] and len(parts) > 2:
                if (core / f"{parts[2]}.py").exists():
                    found.add(parts[2])
    found.discard(path.stem)
    return found


def _graph(core: Path = CORE) -> dict[str, set[str]]:
    return {path.stem: _imports(path, core) for path in sorted(core.glob("*.py"))}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.mark.timeout(30)
def test_the_core_has_no_import_cycle() -> None:
    graph = _graph()
    assert "hooks" in graph and "room" in graph  # the walk found the core
    assert _cycles(graph) == []


@pytest.mark.timeout(30)
def test_the_check_counts_imports_made_for_type_checking(tmp_path: Path) -> None:
    """A circle closed only under ``TYPE_CHECKING`` is found (as the old hooks ↔ room)."""
    (tmp_path / "hooks.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from crdt_server.core.room import Room\n"
    )
    (tmp_path / "room.py").write_text("from crdt_server.core.hooks import Hooks\n")
    graph = _graph(tmp_path)
    assert graph == {"hooks": {"room"}, "room": {"hooks"}}
    assert _cycles(graph) == [["hooks", "room"]]


@pytest.mark.timeout(30)
def test_the_hooks_import_no_room_registry_or_connection() -> None:
    assert _imports(CORE / "hooks.py").isdisjoint(
        {"room", "room_content", "registry", "connection", "weddings", "session", "members"}
    )
