"""The product's features, one package each, each exporting one :class:`Feature` value.

A feature brings everything it needs in that value: the extensions it plugs into the core's
hooks (:mod:`crdt_server.core.hooks`), its HTTP routes (declared next to their handlers with
:class:`~crdt_server.edge.routing.ApiRoute`), its tables (schemas the server installs through
the SQL gateway before any feature is built), its section of the wedding export, the bus
message types its extensions handle, the data commands' view of its tables, its settings
fragment (a frozen dataclass whose fields are ``CRDT_SERVER_*`` variables, read with
``settings.fragment(Kind)``), its subcommands of ``crdt-server`` and its capabilities (the
actions its routes check, with the roles that have them by default).

A feature's package is its public face: another feature, and any product code outside the
features, imports ``crdt_server.features.<name>`` and what its ``__all__`` lists, never
one of its modules (a layer test checks it).

``crdt_server.app.FEATURES`` is the one list of features the server runs; nothing else
names a feature. A feature left out of the list creates none of its tables and serves none
of its routes; on a store that already has them, nothing is dropped or altered.

Inside a feature, a module's name says its role, from one fixed list (:data:`ROLES`):
``extension.py`` (the extensions it plugs into the core), ``tables.py`` (its tables and
their SQL), ``routes.py`` (its HTTP routes), ``settings.py`` (its settings fragment),
``service.py`` (work beside the extensions: stores, senders), ``domain.py`` (pure rules and
types), ``export.py`` (its section of the wedding export) and ``commands.py`` (its
``crdt-server`` subcommands). A role too big for one module is split as ``ROLE_PART.py``
(``extension_mail.py``, ``routes_calendar.py``).

Features are built in the list's order, once the store is open with every running feature's
tables installed (:func:`install_tables`) and the core (the registry, the documents service)
exists: a feature's ``build`` may read its tables, gives its extensions, in their
constructors, what they use (:attr:`Built.core`, another feature's extension), and their
``start`` only starts their background work. A feature whose extension needs another's
(threads need the event log) declares it (``Feature(needs=("events", ...))``) and asks
:meth:`Built.get` for it; the one it needs must come earlier in the list, which
:func:`assembled` checks (:class:`MissingFeature`) when ``FEATURES`` is assembled and
before a server with another list opens its store.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from crdt_server.auth.principals import Revocations
from crdt_server.core.hooks import Core, Extension
from crdt_server.names import CORE_EVENT_NAMESPACES

if TYPE_CHECKING:
    from crdt_server.edge.routing import ApiRoute
    from crdt_server.features.jobs import JobKind
    from crdt_server.settings import Settings
    from crdt_server.storage import DocumentStore, Schema
    from crdt_server.tools.export import Section

__all__ = [
    "ROLES",
    "Built",
    "Command",
    "DuplicateCapability",
    "DuplicateJobKind",
    "Feature",
    "MissingFeature",
    "UndeclaredNeed",
    "assembled",
    "capabilities_of",
    "event_namespaces_of",
    "commands_of",
    "job_kinds_of",
    "moved_names",
    "fragments_of",
    "install_tables",
    "schemas_of",
]

ROLES = (
    "extension",
    "tables",
    "routes",
    "settings",
    "service",
    "domain",
    "export",
    "commands",
)
"""The roles a module inside a feature may have: its name is one of these, or
``ROLE_PART`` (see the module docstring)."""

E = TypeVar("E", bound=Extension)


class MissingFeature(RuntimeError):
    """A feature needs another feature that the list does not have before it."""


class UndeclaredNeed(RuntimeError):
    """A feature's ``build`` asked for another feature's extension without declaring that
    feature in its :attr:`Feature.needs`."""


class Built:
    """What a feature's ``build`` is given: the running core, and the extensions built so
    far, in order (what it may look up)."""

    def __init__(
        self,
        core: Core,
        revocations: Revocations | None = None,
        features: Sequence[Feature] = (),
    ) -> None:
        self.core = core
        """The store (open), the settings, the registry and the documents service: what
        an extension's constructor keeps."""
        self.settings = core.settings
        self.features = tuple(features)
        """Every feature the server runs (built or not yet): what they declare statically
        (the scheduler reads their job kinds)."""
        self.extensions: list[Extension] = []
        self.revocations = revocations if revocations is not None else Revocations()
        """The server's revocations (the tokens the authenticator refuses): a feature that
        ends credentials (a device session) records them here."""
        self._owners: dict[int, str] = {}
        """Extension id -> the name of the feature that built it."""
        self._building: Feature | None = None

    async def build(self, feature: Feature) -> None:
        """Build ``feature``'s extensions (after those of the features before it)."""
        self._building = feature
        try:
            made = feature.build(self)
            if inspect.isawaitable(made):
                made = await made
        finally:
            self._building = None
        for ext in made:
            self._owners[id(ext)] = feature.name
        self.extensions.extend(made)

    def get(self, kind: type[E]) -> E:
        """The extension of type ``kind`` an earlier feature built, one the feature being
        built declares in its :attr:`Feature.needs` (:class:`UndeclaredNeed` otherwise)."""
        found = self.find(kind)
        if found is None:
            raise MissingFeature(
                f"a feature needs {kind.__name__}, which no earlier feature in the list builds"
            )
        building, owner = self._building, self._owners.get(id(found))
        if building is not None and owner is not None and owner not in building.needs:
            raise UndeclaredNeed(
                f"the feature {building.name!r} uses {kind.__name__} of {owner!r} without"
                f" declaring it: Feature(needs=(..., {owner!r}))"
            )
        return found

    def find(self, kind: type[E]) -> E | None:
        """The extension of type ``kind`` if an earlier feature built it (optional
        cooperation: a feature that works alone but does more beside another; no
        declaration needed)."""
        for ext in self.extensions:
            if isinstance(ext, kind):
                return ext
        return None


def assembled(features: Sequence[Feature]) -> tuple[Feature, ...]:
    """``features`` as a list the server can build: each one's :attr:`Feature.needs` come
    before it (:class:`MissingFeature` naming the first that does not)."""
    seen: set[str] = set()
    for feature in features:
        for need in feature.needs:
            if need not in seen:
                raise MissingFeature(
                    f"the feature {feature.name!r} needs {need!r}, which the list does not"
                    " have before it"
                )
        seen.add(feature.name)
    return tuple(features)


def _no_routes() -> Sequence[ApiRoute]:
    return ()


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True)
class Command:
    """A subcommand a feature adds to ``crdt-server`` (``crdt-server NAME ...``): an
    operator's tool that works offline, straight from the store."""

    name: str
    help: str
    """One line for ``crdt-server --help``."""
    run: Callable[[Settings, argparse.Namespace], int]
    """Runs it with the settings ``serve`` would use (the store options
    ``--data-dir``/``--database-url`` on top, when ``arguments`` adds them with
    ``crdt_server.tools.commands.store_options``) and the parsed arguments; returns the
    exit status. A refusal raises ``crdt_server.tools.commands.ToolError`` (one line on
    stderr, exit status 2)."""
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    """Adds its arguments (or its own subcommands) to its parser."""


@dataclass(frozen=True)
class Feature:
    """Everything one feature brings to the server (see the module docstring)."""

    name: str
    build: Callable[[Built], Sequence[Extension] | Awaitable[Sequence[Extension]]]
    """The feature's extensions for one server (called once per app start, in list order,
    with the store open, its :attr:`schemas` installed and the core built:
    :attr:`Built.core`). A coroutine function when it reads the store first (a key its
    extension is given)."""
    routes: Callable[[], Sequence[ApiRoute]] = _no_routes
    """Its HTTP routes (a function: route modules import the edge, which must not load
    when only the tables are wanted)."""
    schemas: Sequence[Schema] = ()
    """Its tables (with those of another feature it reads and may run without), installed
    in order when the server starts, before any feature's ``build``
    (:func:`install_tables`): the data commands (restore, check) and the schema listing
    know them from here too."""
    export: Sequence[Section] = ()
    """Its sections of the wedding export (``GET /export``, ``crdt-server export``)."""
    bus: frozenset[str] = field(default_factory=frozenset)
    """Types of bus messages its extensions handle (others are logged as unknown)."""
    settings: type[Any] | None = None
    """Its settings fragment: a frozen dataclass, every field documented and defaulted,
    each one the variable ``CRDT_SERVER_<FIELD>``, validated in its ``__post_init__``
    (raising :class:`crdt_server.settings.SettingsError`). Its code reads it with
    ``settings.fragment(Kind)``; settings built without it give its defaults."""
    commands: Sequence[Command] = ()
    """Its subcommands of ``crdt-server``."""
    capabilities: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """The capabilities its routes check (``"<feature>.<verb>"``, e.g. ``"events.post"``),
    each with the roles that have it by default (``crdt_server.auth.permissions.LEADS``...).
    An operator's ``CRDT_SERVER_PERMISSIONS`` may replace their roles; the permissions
    reference lists them. A capability of a feature the server does not run is unknown."""
    event_namespaces: tuple[str, ...] = ()
    """The prefixes of the event types it stores (``"thread."``): an imported wedding's
    events must be of a namespace a feature the server runs declares (or the core's,
    :data:`crdt_server.names.CORE_EVENT_NAMESPACES`)."""
    jobs: Sequence[JobKind] = ()
    """The kinds of scheduled job it runs (a reminder), each named ``"<feature>.<what>"``:
    the scheduler feature (:mod:`crdt_server.features.scheduler`) claims the due jobs of
    every kind the running features declare, and only those."""
    needs: tuple[str, ...] = ()
    """The features (by name) whose extensions its ``build`` takes with
    :meth:`Built.get`: each must come before it in the list (:func:`assembled`)."""


def schemas_of(features: Iterable[Feature]) -> tuple[Schema, ...]:
    """The schemas of ``features`` in order, each once (by name; a feature may list
    another's that it reads)."""
    found: dict[str, Schema] = {}
    for feature in features:
        for schema in feature.schemas:
            found.setdefault(schema.name, schema)
    return tuple(found.values())


async def install_tables(store: DocumentStore, features: Iterable[Feature]) -> None:
    """Install the tables of ``features`` in ``store`` (:func:`schemas_of`, in order): what
    the server does once its store is open, before any feature's ``build``; a test or a
    tool that drives a feature's extension or tables without a server does the same."""
    for schema in schemas_of(features):
        await store.install(schema)


def event_namespaces_of(features: Iterable[Feature]) -> tuple[str, ...]:
    """The event namespaces of ``features`` and the core's, each once, in order."""
    return tuple(
        dict.fromkeys((*CORE_EVENT_NAMESPACES, *(n for f in features for n in f.event_namespaces)))
    )


class DuplicateJobKind(ValueError):
    """Two features declare the same job kind."""


def job_kinds_of(features: Iterable[Feature]) -> dict[str, JobKind]:
    """Name -> job kind, for every kind ``features`` declare (:class:`DuplicateJobKind` if
    two declare one name)."""
    found: dict[str, JobKind] = {}
    for feature in features:
        for kind in feature.jobs:
            if kind.name in found:
                raise DuplicateJobKind(f"the job kind {kind.name!r} is declared twice")
            found[kind.name] = kind
    return found


def fragments_of(features: Iterable[Feature]) -> tuple[type[Any], ...]:
    """The settings fragments of ``features``, in order (what ``Settings.from_env`` fills)."""
    return tuple(f.settings for f in features if f.settings is not None)


class DuplicateCapability(ValueError):
    """Two features declare the same capability."""


def capabilities_of(features: Iterable[Feature]) -> dict[str, frozenset[str]]:
    """Capability -> its default roles, for every capability ``features`` declare, in order
    (what the permission matrix knows; :class:`DuplicateCapability` if two declare one)."""
    found: dict[str, frozenset[str]] = {}
    owner: dict[str, str] = {}
    for feature in features:
        for name, roles in feature.capabilities.items():
            if name in found:
                raise DuplicateCapability(
                    f"the capability {name!r} is declared by {owner[name]} and {feature.name}"
                )
            found[name], owner[name] = frozenset(roles), feature.name
    return found


def commands_of(features: Iterable[Feature]) -> tuple[Command, ...]:
    """The subcommands of ``features``, in order."""
    return tuple(command for f in features for command in f.commands)


def moved_names(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A feature package's module ``__getattr__`` (PEP 562) for the names it exported that
    moved to another feature (``homes``: name -> the package that serves it now): each is
    looked up there at first use (so the two packages may import each other), with a
    ``DeprecationWarning`` that names its new place; any other name is an
    ``AttributeError``. Kept for one release after the move (the CHANGELOG lists them)."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        warnings.warn(
            f"{package}.{name} moved to {home}.{name}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(home), name)

    return __getattr__
