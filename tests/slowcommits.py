"""A real server whose commits can be held or slowed, for the backlog tests.

Run as ``python -m tests.slowcommits serve ...`` (``ServerProcess(module="tests.slowcommits")``):
the same ``crdt-server`` command with one extra extension, :class:`CommitBrake`, whose
``on_prepare`` (awaited by a room's commit before the store is written) does two things:

- while the file named by ``CRDT_TEST_HOLD_FILE`` exists, a commit of a room whose name
  starts with the file's text waits (the file is looked at every 5 ms): a store that
  stopped answering for that room only (the room's own commit task waits; the event loop
  and every other room go on);
- a commit of a room whose name starts with ``CRDT_TEST_SLOW_PREFIX`` takes
  ``CRDT_TEST_COMMIT_SECONDS`` longer: a store slower than the writers of that room.

It exists only here, in the tests, never in a server a deployment can start.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import crdt_server.cli as cli
from crdt_server.core.hooks import Extension, RoomView
from crdt_server.core.payloads import CommitBatch

__all__ = ["CommitBrake", "main"]

_POLL_SECONDS = 0.005


class CommitBrake(Extension):
    name = "test-commit-brake"

    def __init__(self) -> None:
        hold = os.environ.get("CRDT_TEST_HOLD_FILE", "")
        self._hold = Path(hold) if hold else None
        self._slow_prefix = os.environ.get("CRDT_TEST_SLOW_PREFIX", "")
        self._slow_seconds = float(os.environ.get("CRDT_TEST_COMMIT_SECONDS", "0"))

    async def on_prepare(self, room: RoomView, batch: CommitBatch) -> None:
        while self._held(room.name):  # noqa: ASYNC110 (another process lifts it: a file)
            await asyncio.sleep(_POLL_SECONDS)  # a store that does not answer yet
        if self._slow_prefix and room.name.startswith(self._slow_prefix):
            await asyncio.sleep(self._slow_seconds)  # a store this much slower

    def _held(self, name: str) -> bool:
        if self._hold is None:
            return False
        try:
            prefix = self._hold.read_text().strip()
        except FileNotFoundError:
            return False
        return name.startswith(prefix)


_create_app = vars(cli)["create_app"]


def _create_app_with_brake(settings: Any, **kwargs: Any) -> Any:
    return _create_app(settings, extensions=[CommitBrake()], **kwargs)


def main() -> int:
    vars(cli)["create_app"] = _create_app_with_brake  # in this child process only
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
