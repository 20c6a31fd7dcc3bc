"""The run sheets' extension: holds the run sheet links' table for the routes
(:mod:`crdt_server.features.runsheets.routes`)."""

from __future__ import annotations

from crdt_server.core.hooks import Core, Extension
from crdt_server.features.runsheets.tables import RunSheetLinks
from crdt_server.storage import Gateway

__all__ = ["RunSheets"]


class RunSheets(Extension):
    """See the module docstring."""

    name = "runsheets"

    def __init__(self, core: Core) -> None:
        self.links = RunSheetLinks(Gateway.of(core.store))
        """The run sheet links' table."""
