"""Each vendor's run sheet, shared by a read-only link: the couple and the planner make,
list and revoke links (``.../day/run-sheets``, the ``day.run_sheets`` capability); a link's
token opens that vendor's items of the timeline as a printable page (``.../day/run-sheet``)
until two days after the wedding. The timeline and the wedding's date are read through the
delays feature (:class:`crdt_server.features.delays.DayDelays`); builds on it."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.auth.permissions import LEADS
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.delays import DayDelays
from crdt_server.features.runsheets.extension import RunSheets
from crdt_server.features.runsheets.routes import RUN_SHEETS, runsheet_routes
from crdt_server.features.runsheets.tables import SCHEMA

__all__ = ["FEATURE", "RunSheets"]


def _build(built: Built) -> Sequence[Extension]:
    built.get(DayDelays)  # the routes read the timeline and the wedding's date through it
    return [RunSheets(built.core)]


FEATURE = Feature(
    "runsheets",
    _build,
    needs=("delays",),
    routes=runsheet_routes,
    schemas=(SCHEMA,),
    capabilities={RUN_SHEETS: LEADS},
)
