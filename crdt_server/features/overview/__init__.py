"""The wedding at a glance: ``GET /api/weddings/{id}/overview``, one read of the figures the
app's Overview draws (answers by day, side and household, meals, the budget by category and
month, tasks done against due, the day's vendors), each section only for who may read its
document (:mod:`.routes`). Read-only: no table, no extension of its own. It reads the
answers from the events feature's log, the vendors' contacts and call times through the
day feature and the run sheet links through the runsheets feature, each where the server
runs it."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.overview.routes import OverviewAnswer, overview_routes

__all__ = ["FEATURE", "OverviewAnswer"]


def _build(built: Built) -> Sequence[Extension]:
    return []


FEATURE = Feature("overview", _build, routes=overview_routes)
