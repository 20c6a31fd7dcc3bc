"""Projections: a document as a role with hidden fields may read it, over every sync path.

A Yjs replica cannot be filtered per connection (a reader that misses some items of a
client holds all that client's later items pending forever), so a role whose field rules
hide fields of a document (a vendor and the guests' ``notes`` and ``contact``, by default,
or a vendor member whose field set leaves meals out) reads a separate room instead:
``{wedding_id}/{doc}@{key}``, named by the fields it holds (``guests@names_meals``,
``guests@names``), written only by the server from the committed document through an
allowlist of those fields. Its
WebSocket (read-only), binary read, JSON read and HTTP sync use that room (the edge finds
the extension as a :class:`~crdt_server.edge.upgrade.Projector`); the hidden fields' bytes
never reach it. See the documents guide and the field-privacy design.
"""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.projections.domain import allowlist, mirror
from crdt_server.features.projections.extension import PROJECTOR, Projections
from crdt_server.features.projections.settings import ProjectionSettings
from crdt_server.features.projections.tables import SCHEMA

__all__ = ["FEATURE", "PROJECTOR", "ProjectionSettings", "Projections", "allowlist", "mirror"]


def _build(built: Built) -> Sequence[Extension]:
    return [Projections(built.core)]


FEATURE = Feature("projections", _build, schemas=(SCHEMA,), settings=ProjectionSettings)
