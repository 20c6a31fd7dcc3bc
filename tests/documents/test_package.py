"""The package's surface and its layering: ``documents`` imports only pycrdt, the stdlib and
the server's dependency-free vocabulary of who (``crdt_server.actor``)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import sys
from pathlib import Path

from crdt_server import documents
from crdt_server.documents import model, schema

PACKAGE = Path(documents.__file__).parent


VOCABULARY = frozenset({"crdt_server.actor", "crdt_server.lib0"})
"""The modules of the server the domain may import: they import only the standard library."""


def imported_modules(path: Path) -> set[str]:
    """Top-level packages ``path`` imports, and the whole name of what it imports of the
    server."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        found: list[str] = []
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [node.module]
        for name in found:
            names.add(name if name.split(".")[0] == "crdt_server" else name.split(".")[0])
    return names


def test_documents_imports_only_pycrdt_and_the_standard_library() -> None:
    allowed = set(sys.stdlib_module_names) | {"pycrdt", "__future__"} | VOCABULARY
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) > 1
    for path in modules:
        assert imported_modules(path) <= allowed, path.name
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for name in VOCABULARY:
        path = Path(str(importlib.import_module(name).__file__))
        assert imported_modules(path) <= stdlib, name


def test_the_public_surface_is_explicit() -> None:
    assert documents.DOCUMENT_KINDS == ("timeline", "budget", "guests", "seating", "tasks")
    assert sorted(documents.__all__) == sorted(set(documents.__all__))
    for name in documents.__all__:
        assert hasattr(documents, name), name
    assert issubclass(documents.OperationError, ValueError)
    assert issubclass(documents.DocumentError, ValueError)
    assert (PACKAGE / "py.typed").exists()


def test_conflicts_are_frozen_and_ordered() -> None:
    first = documents.Conflict("a.b", ("x/y",), "A.")
    second = documents.Conflict("a.c", (), "B.")
    assert sorted([second, first]) == [first, second]
    assert dataclasses.is_dataclass(first)
    try:
        first.code = "z"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("Conflict is not frozen")


def test_records_have_the_fields_of_their_entities() -> None:
    """Each record type holds exactly its entity's fields, in its order (a field added to
    the entity and not to the record, or the other way round, fails here); every entity has
    one; so do the single maps (a profile, a menu, a budget's settings)."""
    every = [entity for entities in schema.ENTITIES.values() for entity in entities]
    assert set(schema.RECORDS) == set(every)
    for entity, record in schema.RECORDS.items():
        names = [field.name for field in dataclasses.fields(record)]
        assert names == ["id", *(field.name for field in entity.fields)], record.__name__
    for fields, record in [(model.PROFILE, schema.Profile), (model.MENU, schema.Menu)]:
        names = [field.name for field in dataclasses.fields(record)]
        assert names == [field.name for field in fields], record.__name__
    budget = [field.name for field in dataclasses.fields(schema.Budget)]
    assert [field.name for field in model.BUDGET_SETTINGS] == budget[1:3]
    every_root = {entity.collection for entities in schema.ENTITIES.values() for entity in entities}
    assert every_root | {"settings", "profile", "menu"} == {
        name for roots in schema.ROOTS.values() for name in roots
    }
    assert set(schema.ROOTS) == set(schema.ENTITIES) == set(model.DOCUMENT_KINDS)


def test_wedding_ids_follow_the_server_allowlist() -> None:
    # The rule has one home, the domain's model; the server's allowlist is that rule.
    from crdt_server.names import WEDDING_ID_PATTERN

    assert model.WEDDING_ID_PATTERN is WEDDING_ID_PATTERN
