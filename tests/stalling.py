"""A real server whose event loop stalls, for the loop watchdog's tests (issue 47).

Run as ``python -m tests.stalling serve ...`` (``ServerProcess(module="tests.stalling")``):
the same ``crdt-server`` command, with one extra extension, :class:`Staller`, in every
server process (the single one, or each ``--workers`` worker). It watches each room's
document and, when an integrated update contains :data:`MARKER`, spins for ever inside
pycrdt's ``apply_update`` (a change observer that never returns), holding the event loop
as the pycrdt hang of issue 47 did. It needs no hostile shape, so it keeps producing a
real stall after the codec refuses the one known to hang pycrdt; and it exists only
here, in the tests, never in a server a deployment can start.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pycrdt import TransactionEvent

import crdt_server.cli as cli
from crdt_server.core.hooks import Extension, RoomView

__all__ = ["BLOCKER", "MARKER", "Staller", "main"]

MARKER = b"stall-the-loop-issue-47"
"""Bytes that make :class:`Staller` spin when an update carrying them is applied."""
BLOCKER = b"block-the-loop-issue-74"
"""Bytes that make :class:`Staller` block (sleep, using no CPU) for an hour instead: a loop
stuck without spinning, which a paused process resembles until it runs again."""


class Staller(Extension):
    name = "test-staller"

    async def on_load(self, room: RoomView) -> None:
        room.doc.observe(_spin_on_marker)


def _spin_on_marker(event: TransactionEvent) -> None:
    if MARKER in event.update:
        while True:  # the stall: never returns, as a hang inside pycrdt would not
            pass
    if BLOCKER in event.update:
        time.sleep(3600)  # noqa: ASYNC251 (the point: the loop blocked, not spinning)


_create_app = vars(cli)["create_app"]


def _create_app_with_staller(settings: Any, **kwargs: Any) -> Any:
    return _create_app(settings, extensions=[Staller()], **kwargs)


_original_worker_argv = cli.worker_argv


def _install() -> None:
    # The command's own module, patched in this child process only.
    vars(cli)["create_app"] = _create_app_with_staller
    vars(cli)["worker_argv"] = _patched_worker_argv


def _patched_worker_argv(
    index: int, fd: int, heartbeat: int, *, count: int, run_dir: Path
) -> list[str]:
    argv = _original_worker_argv(index, fd, heartbeat, count=count, run_dir=run_dir)
    code = "import sys; from tests.stalling import worker_main; sys.exit(worker_main(sys.argv[1:]))"
    return [sys.executable, "-c", code, *argv[3:]]


def worker_main(argv: Sequence[str]) -> int:
    _install()
    return cli.worker_main(argv)


def main() -> int:
    _install()
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
