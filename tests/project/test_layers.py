"""The layering rules of the architecture (ARCHITECTURE.md), checked by parsing imports.

One table says, for every part of the product, which of the project's parts and which heavy
libraries it may import. Every module of every product package must fall under exactly one
row, so a new module or subpackage cannot slip past the rules.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRODUCT_PACKAGES = ("crdt_server", "documents", "storage")

HEAVY = frozenset(
    {
        "starlette",
        "uvicorn",
        "redis",
        "aiosqlite",
        "asyncpg",
        "sqlite3",
        "pycrdt",
        "asyncio",
        "caldav",
        "requests",
    }
)
"""Libraries whose use is confined to some layers (the rest of the standard library and
small pure libraries are free for all)."""

INTERNAL = ("crdt_server", "documents", "storage", "tests", "benchmarks", "examples")

FEATURE_IMPORTS = (
    "crdt_server.features",
    "crdt_server.edge",
    "crdt_server.core",
    "crdt_server.codec",
    "crdt_server.auth",
    "crdt_server.cluster.bus",
    "crdt_server.cluster.messages",
    "crdt_server.actor",
    "crdt_server.clock",
    "crdt_server.errors",
    "crdt_server.names",
    "crdt_server.placement",
    "crdt_server.settings",
    "crdt_server.times",
    "crdt_server.tools.export",
    "crdt_server.tools.commands",
    "crdt_server.documents",
    "crdt_server.storage",
    "crdt_server.threads",
)
"""What a feature may import of the project (the features' rows); ``crdt_server.threads``
for long reads on worker threads (the conflicts keeper reading a wedding whole)."""

# (module prefix, project modules it may import (prefixes), heavy libraries it may import).
# The first matching row wins, so more specific prefixes come first.
RULES: list[tuple[str, tuple[str, ...], frozenset[str]]] = [
    # The pure codecs: bytes in, values out; only the shared error vocabulary and lib0's
    # numbers.
    (
        "crdt_server.codec",
        ("crdt_server.codec", "crdt_server.errors", "crdt_server.lib0", "crdt_server.threads"),
        frozenset(),
    ),
    # The shared vocabulary depends on nothing but the domain's names.
    ("crdt_server.errors", (), frozenset()),
    ("crdt_server.actor", (), frozenset()),
    # lib0's varuint writer: below the codecs and the domain, which both write Yjs numbers.
    ("crdt_server.lib0", (), frozenset()),
    # Long work on a worker thread pausing for the event loop (the codecs' whole-document
    # reads, the core's replays).
    ("crdt_server.threads", (), frozenset({"asyncio"})),
    # RFC 3339 times, as every route, feed and export writes them.
    ("crdt_server.times", (), frozenset()),
    # The one wall clock (and its timers) every layer reads "now" from.
    ("crdt_server.clock", (), frozenset({"asyncio"})),
    # One timer for many members (the wire's pings, the core's keepalive).
    ("crdt_server.ticks", (), frozenset({"asyncio"})),
    ("crdt_server.names", ("crdt_server.documents",), frozenset()),
    ("crdt_server.settings", ("crdt_server.names",), frozenset()),
    ("crdt_server.rlimits", (), frozenset()),
    # Which worker of a host owns a wedding: the hand-off, the HTTP proxy and the
    # extensions' own schedules share it.
    ("crdt_server.placement", (), frozenset()),
    ("crdt_server.gcpolicy", (), frozenset()),
    # Tokens and permissions: no I/O, no web framework.
    (
        "crdt_server.auth",
        (
            "crdt_server.auth",
            "crdt_server.actor",
            "crdt_server.clock",
            "crdt_server.errors",
            "crdt_server.names",
            "crdt_server.documents",
        ),
        frozenset(),
    ),
    # The bus seam and the only module that knows Redis.
    (
        "crdt_server.cluster.redis_bus",
        (
            "crdt_server.cluster",
            "crdt_server.codec",
            "crdt_server.errors",
            "crdt_server.settings",
            "crdt_server.storage",
        ),
        frozenset({"redis", "asyncio"}),
    ),
    # The bus's messages: typed Structs and the binary frames' codecs.
    (
        "crdt_server.cluster.messages",
        ("crdt_server.cluster", "crdt_server.codec", "crdt_server.errors"),
        frozenset(),
    ),
    ("crdt_server.cluster", ("crdt_server.cluster",), frozenset({"asyncio"})),
    # The WebSocket transport: frames, sockets and HTTP heads, never rooms or routes (it knows
    # the upgrade gate as a protocol of its own). Only its adapter imports uvicorn; the rest
    # takes uvicorn's names from there.
    ("crdt_server.wire.uvicorn_private", (), frozenset({"uvicorn", "asyncio"})),
    (
        "crdt_server.wire",
        (
            "crdt_server.wire",
            "crdt_server.codec",
            "crdt_server.errors",
            "crdt_server.placement",
            "crdt_server.settings",
            "crdt_server.ticks",
        ),
        frozenset({"asyncio"}),
    ),
    # The core knows the codecs, the transport seam and the stores' interface; never the web
    # edge, nor the rest of the wire, nor the domain (ARCHITECTURE.md: it is given what it
    # needs of the documents through the narrow protocols of crdt_server.core.domain).
    (
        "crdt_server.core",
        (
            "crdt_server.core",
            "crdt_server.codec",
            "crdt_server.wire.transport",
            "crdt_server.auth",
            "crdt_server.cluster.bus",
            "crdt_server.cluster.messages",
            "crdt_server.actor",
            "crdt_server.clock",
            "crdt_server.errors",
            "crdt_server.placement",
            "crdt_server.settings",
            "crdt_server.storage",
            "crdt_server.threads",
            "crdt_server.ticks",
        ),
        frozenset({"asyncio", "pycrdt"}),
    ),
    # The CalDAV calendars: a feature like the others, and the only one that speaks CalDAV
    # (the caldav client library, over requests, run in worker threads).
    (
        "crdt_server.features.calendars",
        FEATURE_IMPORTS,
        frozenset({"asyncio", "pycrdt", "starlette", "caldav", "requests"}),
    ),
    # The overview: a read-only feature (no table, no extension, no Yjs): the documents'
    # readers, the edge's route kit and guards, and the features it reads through.
    (
        "crdt_server.features.overview",
        (
            "crdt_server.features",
            "crdt_server.edge.guards",
            "crdt_server.edge.params",
            "crdt_server.edge.routing",
            "crdt_server.core.hooks",
            "crdt_server.auth",
            "crdt_server.clock",
            "crdt_server.times",
            "crdt_server.documents",
            "crdt_server.storage",
        ),
        frozenset({"starlette"}),
    ),
    # One package per feature (ARCHITECTURE.md, "A feature is one package"): the core's
    # hooks, the edge's shared route kit, the domain, the stores and the SQL gateway, and
    # the features it builds on. The edge, the core and the tools import no feature.
    (
        "crdt_server.features",
        FEATURE_IMPORTS,
        frozenset({"asyncio", "pycrdt", "starlette"}),
    ),
    # The HTTP edge: everything but the Redis implementation; uvicorn only through the wire.
    (
        "crdt_server.edge",
        (
            "crdt_server.edge",
            "crdt_server.wire",
            "crdt_server.core",
            "crdt_server.codec",
            "crdt_server.auth",
            "crdt_server.cluster.bus",
            "crdt_server.cluster.messages",
            "crdt_server.actor",
            "crdt_server.clock",
            "crdt_server.errors",
            "crdt_server.names",
            "crdt_server.settings",
            "crdt_server.times",
            "crdt_server.tools.export",
            "crdt_server.documents",
            "crdt_server.storage",
        ),
        frozenset({"asyncio", "pycrdt", "starlette"}),
    ),
    # Data tools (backup, restore, export, import, check, compact): the core's document
    # replay and the stores, never the web edge; only backup knows sqlite3 (SQLite's
    # backup API). The edge may use the export format.
    (
        "crdt_server.tools",
        (
            "crdt_server.tools",
            "crdt_server.core",
            "crdt_server.codec",
            "crdt_server.actor",
            "crdt_server.clock",
            "crdt_server.errors",
            "crdt_server.names",
            "crdt_server.settings",
            "crdt_server.times",
            "crdt_server.documents",
            "crdt_server.storage",
        ),
        frozenset({"asyncio", "pycrdt", "sqlite3"}),
    ),
    # The app factory and the command line put everything together.
    ("crdt_server.app", ("crdt_server",), HEAVY - {"sqlite3"}),
    ("crdt_server.cli", ("crdt_server",), HEAVY - {"sqlite3"}),
    ("crdt_server.testing", ("crdt_server",), HEAVY),
    # The domain is pure functions over pycrdt documents: no storage, no server (only the
    # dependency-free vocabulary of who, and lib0's numbers).
    (
        "crdt_server.documents",
        ("crdt_server.documents", "crdt_server.actor", "crdt_server.lib0"),
        frozenset({"pycrdt"}),
    ),
    # Storage knows its databases and nothing of the server or the domain.
    (
        "crdt_server.storage",
        ("crdt_server.storage", "crdt_server.clock"),
        frozenset({"aiosqlite", "asyncpg", "sqlite3", "asyncio"}),
    ),
    ("crdt_server", ("crdt_server",), frozenset()),
]


NAMESPACED = ("documents", "storage")
"""Folders of the repository that are installed as ``crdt_server.<name>`` (through the
symlinks ``crdt_server/<name>``)."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    if parts[0] in NAMESPACED:
        parts.insert(0, "crdt_server")
    return ".".join(parts)


@functools.cache
def _tree(path: Path) -> ast.Module:
    """``path`` parsed once for every test that reads it (hundreds of modules, a dozen
    tests each walking them: parsing each time was most of this file's CPU)."""
    return ast.parse(path.read_text(), filename=str(path))


@functools.cache
def _nodes(path: Path) -> tuple[ast.AST, ...]:
    """Every node of ``path``'s tree, walked once (walking them again in each test was
    most of this file's CPU after parsing)."""
    return tuple(ast.walk(_tree(path)))


@functools.cache
def _imports(path: Path) -> frozenset[str]:
    """Every module ``path`` imports, as dotted names (``from a.b import c`` gives ``a.b``
    and ``a.b.c``, since ``c`` may be a module)."""
    names: set[str] = set()
    for node in _nodes(path):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = _module_name(path).split(".")
                if path.name != "__init__.py":
                    package.pop()
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return frozenset(names)


def _rule(module: str) -> tuple[str, tuple[str, ...], frozenset[str]]:
    for rule in RULES:
        prefix = rule[0]
        if module == prefix or module.startswith(prefix + "."):
            return rule
    raise AssertionError(f"{module} falls under no row of the layer table")


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = sorted(
    p
    for package in PRODUCT_PACKAGES
    for p in (ROOT / package).rglob("*.py")
    if not any((ROOT / "crdt_server" / name) in p.parents for name in NAMESPACED)
)
"""Every product module once (the symlinked folders under crdt_server/ are their targets)."""


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_keeps_to_its_layer(path: Path) -> None:
    module = _module_name(path)
    prefix, allowed, heavy = _rule(module)
    for name in sorted(_imports(path)):
        top = name.split(".")[0]
        if top in INTERNAL:
            if name == "crdt_server" or _within(name, (prefix,)):
                continue  # the package itself, or its own part
            assert top not in {"tests", "benchmarks", "examples"}, f"{module} imports {name}"
            assert _within(name, allowed), f"{module} ({prefix}) may not import {name}"
        elif top in HEAVY:
            assert top in heavy, f"{module} ({prefix}) may not use {top}"


_NAMESPACED_IMPORT_LINE = re.compile(
    rf"^[ \t]*(?:from|import)[ \t][^\n]*\b(?:{'|'.join(NAMESPACED)})\b", re.MULTILINE
)
"""An import line that names ``documents`` or ``storage`` somewhere: only such a file can
import them by their top-level names."""


def test_one_namespace() -> None:
    """The wheel installs one top-level package: nothing imports ``documents`` or ``storage``
    by their top-level names, and the symlinks that make them subpackages are there."""
    for name in NAMESPACED:
        link = ROOT / "crdt_server" / name
        assert link.is_symlink() and link.resolve() == (ROOT / name).resolve(), link
    sources = [
        *MODULES,
        *(p for d in ("tests", "benchmarks", "examples") for p in (ROOT / d).rglob("*.py")),
    ]
    for path in sources:
        if "node_modules" in path.parts or not _NAMESPACED_IMPORT_LINE.search(path.read_text()):
            continue  # no import line names either (most tests: parsing them was 5 s)
        tops = {name.split(".")[0] for name in _imports(path)}
        assert not tops & set(NAMESPACED), (
            f"{path.relative_to(ROOT)} imports {tops & set(NAMESPACED)}"
        )


MAX_MODULE_LINES = 600
"""A module over this is split by what its parts do (ARCHITECTURE.md: in a feature, as
ROLE_PART.py); the testing kit's, the domain's and the store's modules included."""


def test_no_product_module_is_over_600_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in MODULES
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"split these by what their parts do: {long}"


def test_only_the_cluster_module_knows_redis() -> None:
    for path in MODULES:
        if "redis" in {n.split(".")[0] for n in _imports(path)}:
            assert _module_name(path) == "crdt_server.cluster.redis_bus", path


def test_the_table_covers_every_product_module() -> None:
    assert MODULES, "no product modules found"
    for path in MODULES:
        _rule(_module_name(path))


def test_the_settings_reference_lists_every_setting_with_its_default() -> None:
    from crdt_server.app import FEATURES
    from crdt_server.features import fragments_of
    from crdt_server.settings import Settings, variables

    readme = (ROOT / "docs" / "reference" / "settings.md").read_text()
    defaults = Settings()
    for name, (owner, field) in variables(fragments_of(FEATURES)).items():
        value = getattr(defaults.fragment(owner) if owner is not Settings else defaults, field.name)
        row = f"| `{name}` | `{value}` |"
        assert row in readme, f"the settings reference lacks or misstates: {row}"


UVICORN_PUBLIC = frozenset({"Config", "Server", "run"})
"""What uvicorn documents; everything else of it is internal and may move in any release."""
UVICORN_ADAPTER = "crdt_server.wire.uvicorn_private"
"""The one module that imports uvicorn's internals (checked by
tests/wire/test_uvicorn_private.py)."""


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _uvicorn_uses(path: Path) -> set[str]:
    """Every ``uvicorn.X...`` an import or an attribute chain on the ``uvicorn`` module
    names (``uvicorn.config.Config``, ``uvicorn.protocols``), as dotted names."""
    found = {name for name in _imports(path) if name.startswith("uvicorn.")}
    for node in _nodes(path):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "uvicorn"
        ):
            found.add(f"uvicorn.{node.attr}")
    return found


def test_no_private_module_is_imported() -> None:
    """No product module imports a private part of another package (``pycrdt._base``, a
    ``from x import _y``): those change without notice. uvicorn's internals are the one
    documented exception, confined to their adapter (next test)."""
    for path in MODULES:
        for name in _imports(path):
            top, *rest = name.split(".")
            if top in INTERNAL or top == "uvicorn":
                continue
            assert not any(map(_private, rest)), f"{_module_name(path)} imports the private {name}"


def test_uvicorn_internals_are_imported_in_one_adapter() -> None:
    """Outside crdt_server.wire.uvicorn_private, the product uses only ``uvicorn.Config``,
    ``uvicorn.Server`` and ``uvicorn.run``."""
    assert UVICORN_ADAPTER in {_module_name(p) for p in MODULES}
    for path in MODULES:
        module = _module_name(path)
        if module == UVICORN_ADAPTER:
            continue
        for name in _uvicorn_uses(path):
            assert name.split(".")[1] in UVICORN_PUBLIC and name.count(".") == 1, (
                f"{module} uses uvicorn's internal {name} (take it from {UVICORN_ADAPTER})"
            )


CONCRETE_STORES = frozenset({"SqliteStore", "PostgresStore"})
CONCRETE_STORE_USERS = {
    # What the testing kit's in-process mode serves from: an inline SQLite file, by design
    # (instrumented in its instruments module).
    "crdt_server.testing.inprocess",
    "crdt_server.testing.instruments",
    # The check of a SQLite backup's objects (sqlite_master) against a fresh SQLite store.
    "crdt_server.tools.schema",
}
"""Modules outside storage/ that may name a concrete store class (never test for one)."""


def _names(path: Path) -> set[str]:
    found = {node.id for node in _nodes(path) if isinstance(node, ast.Name)}
    found |= {node.attr for node in _nodes(path) if isinstance(node, ast.Attribute)}
    for node in _nodes(path):
        if isinstance(node, ast.ImportFrom):
            found |= {alias.name for alias in node.names}
    return found


def _isinstance_targets(path: Path) -> set[str]:
    found: set[str] = set()
    for node in _nodes(path):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "isinstance":
            for arg in node.args[1:]:
                found |= {n.id for n in ast.walk(arg) if isinstance(n, ast.Name)}
    return found


def test_storage_is_two_layers_and_no_code_outside_it_tests_the_concrete_store() -> None:
    """Features reach their tables through the SQL gateway (``crdt_server.storage.Gateway``)
    and rooms the document store through its protocol: outside storage/, no module tests a
    store's class, and only the ones listed name a concrete store at all."""
    assert CONCRETE_STORE_USERS <= {_module_name(p) for p in MODULES}
    for path in MODULES:
        module = _module_name(path)
        if module.startswith("crdt_server.storage"):
            continue
        assert not _isinstance_targets(path) & CONCRETE_STORES, f"{module} tests a store's class"
        if module not in CONCRETE_STORE_USERS:
            assert not _names(path) & CONCRETE_STORES, f"{module} names a concrete store"


def test_one_placeholder_rewrite() -> None:
    """``?`` becomes ``$n`` in one place (``storage.gateway.dialect_sql``)."""
    rewrites = [
        path for path in MODULES if 'f"${' in path.read_text() and "next(count)" in path.read_text()
    ]
    assert [_module_name(p) for p in rewrites] == ["crdt_server.storage.gateway"]


def test_features_refuse_in_domain_errors_and_only_the_edge_names_statuses() -> None:
    """A feature refuses with a domain error (``crdt_server.errors``: ``NotFound``,
    ``Forbidden``...); only the edge maps them to HTTP statuses (``DOMAIN_STATUS`` in
    crdt_server/edge/problems.py), so no feature module imports the edge's problems."""
    features = ROOT / "crdt_server" / "features"
    for path in sorted(features.rglob("*.py")):
        imported = _imports(path)
        assert not any(_within(name, ("crdt_server.edge.problems",)) for name in imported), path


def test_modules_inside_a_feature_are_named_by_their_role() -> None:
    """Every module of a feature package is ``__init__.py``, one of the fixed roles, or a
    role split in parts (``ROLE_PART.py``), so a contributor knows which file to open."""
    from crdt_server.features import ROLES

    features = ROOT / "crdt_server" / "features"
    misnamed = []
    for package in sorted(p for p in features.iterdir() if (p / "__init__.py").is_file()):
        for module in sorted(package.glob("*.py")):
            stem = module.stem
            if stem == "__init__" or stem.split("_", 1)[0] in ROLES:
                continue
            misnamed.append(str(module.relative_to(ROOT)))
    assert not misnamed, f"name these by their role ({', '.join(ROLES)}): {misnamed}"


FEATURES_DIR = ROOT / "crdt_server" / "features"
FEATURE_PACKAGES = frozenset(
    p.name for p in FEATURES_DIR.iterdir() if (p / "__init__.py").is_file()
)
"""The feature packages (``crdt_server/features/<name>/``)."""


def _feature_of(module: str) -> str | None:
    """The feature whose package holds ``module`` (``crdt_server.features.<name>...``)."""
    parts = module.split(".")
    if parts[:2] == ["crdt_server", "features"] and len(parts) > 2:
        return parts[2] if parts[2] in FEATURE_PACKAGES else None
    return None


def _feature_module_imports(path: Path, module_name: str | None = None) -> set[str]:
    """The modules inside a feature package that ``path`` imports (``import
    crdt_server.features.B.x``, ``from crdt_server.features.B.x import y``, ``from
    crdt_server.features.B import x`` where ``x`` is a module, and the same spelled
    relatively), as dotted names. ``module_name``: the module ``path`` is (by default,
    from where it lies), which relative imports are resolved against."""
    found: set[str] = set()
    for node in _nodes(path):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.count(".") > 2)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = (module_name or _module_name(path)).split(".")
                if path.name != "__init__.py":
                    package.pop()
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            if module.count(".") > 2:
                found.add(module)
            elif (feature := _feature_of(module)) is not None:
                for alias in node.names:
                    folder = FEATURES_DIR / feature
                    if (folder / f"{alias.name}.py").is_file() or (folder / alias.name).is_dir():
                        found.add(f"{module}.{alias.name}")
    return {name for name in found if _feature_of(name) is not None}


def test_a_feature_is_reached_through_its_package_only() -> None:
    """A feature's public face is its package (``crdt_server/features/<name>/__init__.py``
    and its ``__all__``): another feature, and every product module outside the features
    (the edge, the tools, the app, the command line, the testing kit), imports
    ``crdt_server.features.<name>``, never one of its modules. Tests are not held to it:
    they test a feature's modules directly."""
    breaches = []
    for path in MODULES:
        module = _module_name(path)
        own = _feature_of(module)
        for name in sorted(_feature_module_imports(path)):
            if _feature_of(name) != own:
                breaches.append(f"{module} imports {name}")
    assert not breaches, "import the feature's package instead:\n" + "\n".join(breaches)


def test_the_public_face_rule_catches_a_module_import(tmp_path: Path) -> None:
    """The check above sees each way of naming another feature's module."""
    source = tmp_path / "probe.py"
    source.write_text(
        "import crdt_server.features.events.extension\n"
        "from crdt_server.features.people.domain import Member\n"
        "from crdt_server.features.notifications import extension_mail\n"
        "from crdt_server.features.events import EventLog\n"
        "from crdt_server.features import events\n"
        "from crdt_server.features.jobs import Job\n"
        "from ..webhooks.domain import Endpoint\n"
        "from .. import versions\n"
        "from .domain import ThreadView\n"
    )
    # As if it were crdt_server/features/threads/probe.py (its own modules are its own).
    assert _feature_module_imports(source, "crdt_server.features.threads.probe") == {
        "crdt_server.features.events.extension",
        "crdt_server.features.people.domain",
        "crdt_server.features.notifications.extension_mail",
        "crdt_server.features.webhooks.domain",
        "crdt_server.features.threads.domain",
    }


@pytest.mark.parametrize("name", sorted(FEATURE_PACKAGES))
def test_every_feature_package_declares_its_public_face(name: str) -> None:
    """Each feature's package lists in ``__all__`` what others may use (``FEATURE`` first
    of all), and every listed name is there."""
    import importlib

    from crdt_server.features import Feature

    package = importlib.import_module(f"crdt_server.features.{name}")
    public = getattr(package, "__all__", None)
    assert public is not None and "FEATURE" in public, f"{name} has no __all__ with FEATURE"
    assert isinstance(package.FEATURE, Feature)
    missing = [item for item in public if not hasattr(package, item)]
    assert not missing, f"crdt_server.features.{name} lists but lacks {missing}"


def test_the_domain_has_no_import_circle() -> None:
    """No module of ``documents/`` imports, even inside a function, one that imports it
    back through any chain (``findings`` builds on ``model``; ``invariants`` on both)."""
    modules = {
        _module_name(p): p for p in MODULES if _module_name(p).startswith("crdt_server.documents")
    }
    edges = {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            here = todo.pop()
            for nxt in edges[here]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    package = "crdt_server.documents"
    circles = sorted(
        f"{a} <-> {b}"
        for a in edges
        for b in edges[a]
        if a != package and b != package and reaches(b, a)
    )
    assert not circles, circles


def test_auth_and_the_domain_name_no_http_status() -> None:
    """``crdt_server/auth/`` and ``documents/`` refuse in their own words (``NotAllowed``,
    an ``OperationError``'s ``reason``); the edge maps those to statuses
    (``AUTH_STATUS``, ``OPERATION_STATUS`` in crdt_server/edge/problems.py). No number
    that reads as an HTTP error status (400 to 599) stands in their code, no error is given
    a ``status``, and nothing there is named ``status_code``."""
    found = []
    for path in MODULES:
        module = _module_name(path)
        if not _within(module, ("crdt_server.auth", "crdt_server.documents")):
            continue
        for node in _nodes(path):
            where = f"{module}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Constant) and type(node.value) is int:
                if 400 <= node.value < 600:
                    found.append(f"{where} {node.value}")
            elif isinstance(node, ast.Call):
                callee = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if callee.endswith("Error") and any(k.arg == "status" for k in node.keywords):
                    found.append(f"{where} {callee}(status=...)")
            elif "status_code" in {getattr(node, "attr", None), getattr(node, "id", None)}:
                found.append(f"{where} status_code")
    assert not found, found


# -- rows by name ------------------------------------------------------------------------

_QUERIES = frozenset({"read", "fetch", "_read", "_fetch"})
"""Calls that answer raw rows (tuples): the gateway's ``fetch`` and the
features' thin wrappers of them. Their ``_as`` siblings answer named rows."""
_ROW_WORDS = frozenset({"row", "rows", "r"})
"""Names that hold a row wherever they appear (a parameter of a function that takes one)."""


def _is_query(node: ast.AST) -> bool:
    """A raw-row query: ``await x.read(...)``/``await x.fetch(...)`` or ``yield Sql(...)``."""
    if isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Attribute) and func.attr in _QUERIES
    if isinstance(node, ast.Yield) and isinstance(node.value, ast.Call):
        func = node.value.func
        return isinstance(func, ast.Name) and func.id == "Sql"
    return False


def _bound_names(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def _row_names(tree: ast.AST) -> set[str]:
    """Names bound from a raw-row query, and the loop variables that go over them (per
    module: a row name in one function is a row name in all, which errs on the strict side)."""
    names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            source: ast.AST | None = None
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                source, targets = node.value, list(node.targets)
            elif isinstance(node, ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                source, targets = node.value, [node.target]
            elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
                source, targets = node.iter, [node.target]
            if source is None:
                continue
            from_rows = any(
                _is_query(n) or (isinstance(n, ast.Name) and n.id in names)
                for n in ast.walk(source)
            )
            if from_rows:
                new = set().union(*(_bound_names(t) for t in targets)) - names
                if new:
                    names |= new
                    changed = True
    return names


def _positional(node: ast.Subscript) -> bool:
    index = node.slice
    if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
        index = index.operand
    if isinstance(index, ast.Constant) and isinstance(index.value, int):
        return True
    if isinstance(index, ast.Slice):
        bounds = [b for b in (index.lower, index.upper) if b is not None]
        return bool(bounds) and all(
            isinstance(b, ast.Constant) or isinstance(b, ast.UnaryOp) for b in bounds
        )
    return False


def _positional_row_reads(path: Path) -> list[str]:
    tree = _tree(path)
    rows = _row_names(tree) | _ROW_WORDS
    inner = {  # rows[0][1] is one read, not two
        id(node.value)
        for node in _nodes(path)
        if isinstance(node, ast.Subscript) and _positional(node)
    }
    # events[-1].seq picks the last of a list of named rows and reads it by name.
    inner |= {
        id(node.value)
        for node in _nodes(path)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Subscript)
    }
    found = []
    for node in _nodes(path):
        if not isinstance(node, ast.Subscript) or not _positional(node) or id(node) in inner:
            continue
        base = node.value
        while isinstance(base, ast.Subscript):
            base = base.value
        if isinstance(base, ast.Name) and base.id in rows:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def positional_row_reads() -> list[str]:
    """Every place feature code reads a row by position (see the test below)."""
    features = ROOT / "crdt_server" / "features"
    return [hit for path in sorted(features.rglob("*.py")) for hit in _positional_row_reads(path)]


def test_features_read_rows_by_name() -> None:
    """Feature code reads a row's columns by name: a Struct its ``tables.py`` declares, made
    by the gateway (``Gateway.fetch_as``, ``Gateway.fetch_one_as``, ``yield from rows_as(...)``
    in a transaction). Refused: an integer index or slice (``row[0]``, ``rows[0][1]``,
    ``row[1:]``) on a name bound from a raw-row query (``await x.read(...)``,
    ``await x.fetch(...)``, ``yield Sql(...)``) or a loop over one, or on a name that says
    it holds rows (``row``, ``rows``, ``r``). Picking a row of a list and reading it by name
    (``events[-1].seq``) is not a positional read."""
    hits = positional_row_reads()
    assert not hits, "read these rows by name:\n" + "\n".join(hits)


# -- one way to a feature's tables -------------------------------------------------------


def _held_transactions(path: Path) -> list[str]:
    """Each ``async with x.transaction()`` in ``path``: the gateway's deprecated held
    transaction (pycrdt's ``with doc.transaction():`` is a plain ``with``)."""
    hits: list[str] = []
    for node in _nodes(path):
        if not isinstance(node, ast.AsyncWith):
            continue
        for item in node.items:
            call = item.context_expr
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr == "transaction"
            ):
                hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return hits


def test_product_code_writes_rows_one_way() -> None:
    """Every write of a feature's (or the core's) rows is a transaction written as a
    generator and given to ``Gateway.run``: no module outside ``storage/`` opens the
    deprecated held transaction (``async with gateway.transaction()``), which holds the
    store's one writer while its caller awaits between statements."""
    storage = ROOT / "crdt_server" / "storage"
    hits = [
        hit
        for path in sorted((ROOT / "crdt_server").rglob("*.py"))
        if storage not in path.parents
        for hit in _held_transactions(path)
    ]
    assert not hits, "write these through Gateway.run(tx):\n" + "\n".join(hits)
