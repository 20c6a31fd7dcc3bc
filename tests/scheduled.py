"""A real server with the test reminders feature, for the scheduler's multi-process tests.

Run as ``python -m tests.scheduled serve ...`` (``ServerProcess(module="tests.scheduled")``):
the same ``crdt-server`` command, with :mod:`tests.fixtures.reminder_feature` on the
feature list (a job kind, its route). It exists only here, in the tests.
"""

from __future__ import annotations

from typing import Any

import crdt_server.cli as cli
from crdt_server.app import FEATURES
from tests.fixtures import reminder_feature

__all__ = ["WITH_REMINDERS", "main"]

WITH_REMINDERS = (*FEATURES, reminder_feature.FEATURE)

_create_app = vars(cli)["create_app"]


def _create_app_with_reminders(settings: Any, **kwargs: Any) -> Any:
    # The command passes the features its settings name (``CRDT_SERVER_FEATURES``); the
    # test feature rides along with them.
    features = (*kwargs.pop("features", FEATURES), reminder_feature.FEATURE)
    return _create_app(settings, features=features, **kwargs)


def main() -> int:
    vars(cli)["create_app"] = _create_app_with_reminders
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
