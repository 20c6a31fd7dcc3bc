"""The layering rules of the architecture, checked by parsing imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
            if node.module.startswith("crdt_server."):
                names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).glob("*.py"))


def test_documents_and_storage_never_import_the_server() -> None:
    for package in ("documents", "storage"):
        for module in _modules(package):
            imported = _imports(module)
            assert not imported & {"crdt_server", "starlette", "uvicorn", "redis"}, module


def test_only_the_endpoint_and_app_know_starlette() -> None:
    allowed = {"endpoint.py", "app.py", "api.py", "rest.py", "cli.py", "websocket.py"}
    for module in _modules("crdt_server"):
        if module.name not in allowed:
            assert not _imports(module) & {"starlette", "uvicorn"}, module


def test_the_codec_is_pure() -> None:
    pure = {"protocol.py", "updates.py", "awareness.py", "errors.py", "openapi.py"}
    for module in _modules("crdt_server"):
        if module.name in pure:
            heavy = {"asyncio", "starlette", "storage", "pycrdt", "aiosqlite", "redis"}
            assert not _imports(module) & heavy, module
            inner = {n for n in _imports(module) if n.startswith("crdt_server.")}
            assert inner <= {f"crdt_server.{p.removesuffix('.py')}" for p in pure}, module


def test_readme_lists_every_setting_with_its_default() -> None:
    import dataclasses

    from crdt_server.settings import ENV_PREFIX, Settings

    readme = (ROOT / "README.md").read_text()
    defaults = Settings()
    for field in dataclasses.fields(Settings):
        row = f"| `{ENV_PREFIX}{field.name.upper()}` | `{getattr(defaults, field.name)}` |"
        assert row in readme, f"README settings table lacks or misstates: {row}"
