"""The testing kit: prove that an app converges against this server.

Install with ``pip install crdt-server[testing]``. The pytest plugin
(:mod:`crdt_server.testing.plugin`) is registered through the ``pytest11`` entry point and
offers the fixtures ``crdt_server_url``, ``crdt_server_factory``, ``crdt_token``,
``crdt_clients`` and ``crdt_inprocess``. The rest:

* clients with one interface in both modes: :class:`YClient` (a real WebSocket) and
  :class:`InProcessClient` (in-memory channels to real rooms, :class:`InProcessServer`);
* scripts of clients editing, going offline and coming back: :func:`play`, :func:`settle`;
* hypothesis strategies in :mod:`crdt_server.testing.strategies`;
* :func:`assert_converged` and :func:`assert_invariants`;
* :class:`FakeClock` (``crdt_server.clock``): the server's clock, moved by hand
  (``await clock.advance(3600)`` wakes the timers and runs the jobs it makes due); the
  ``crdt_clock`` fixture installs one for a test's in-process servers;
* :class:`TokenMinter` (``minter.headers("vendor", "eve")``: an ``Authorization`` header),
  :func:`bearer`, and :func:`until` (poll an async check with a deadline).

Names are imported on first use, so importing this package (as pytest does for the plugin)
costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crdt_server.clock import FakeClock

    from .assertions import assert_converged, assert_invariants, document_json
    from .client import YClient
    from .edits import Edit, apply_edit
    from .inprocess import InProcessClient, InProcessServer, in_process_server
    from .scenario import Flush, GoOffline, Operate, Reconnect, Step, SyncClient, play, settle
    from .server import ServerProcess
    from .tokens import TokenMinter, bearer
    from .waits import until

__all__ = [
    "Edit",
    "FakeClock",
    "Flush",
    "GoOffline",
    "InProcessClient",
    "InProcessServer",
    "Operate",
    "Reconnect",
    "ServerProcess",
    "Step",
    "SyncClient",
    "TokenMinter",
    "YClient",
    "apply_edit",
    "assert_converged",
    "assert_invariants",
    "bearer",
    "document_json",
    "in_process_server",
    "play",
    "settle",
    "until",
]

_HOME = {
    "assert_converged": "assertions",
    "assert_invariants": "assertions",
    "document_json": "assertions",
    "YClient": "client",
    "Edit": "edits",
    "FakeClock": "crdt_server.clock",
    "apply_edit": "edits",
    "InProcessClient": "inprocess",
    "InProcessServer": "inprocess",
    "in_process_server": "inprocess",
    "Flush": "scenario",
    "GoOffline": "scenario",
    "Operate": "scenario",
    "Reconnect": "scenario",
    "Step": "scenario",
    "SyncClient": "scenario",
    "play": "scenario",
    "settle": "scenario",
    "ServerProcess": "server",
    "TokenMinter": "tokens",
    "bearer": "tokens",
    "until": "waits",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'crdt_server.testing' has no attribute {name!r}")
    module = home if home.startswith("crdt_server.") else f"{__name__}.{home}"
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
