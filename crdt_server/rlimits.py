"""The process's open-files limit: every WebSocket holds one file descriptor.

A process may raise its own soft limit up to the hard limit, which only the operator (or
root) can raise. ``crdt-server serve`` raises the soft limit to the hard one at start and
logs both, so a host whose hard limit is 20,000 serves close to 20,000 connections per
process without a ``ulimit -n`` in front of it (deploy/README.md, "File descriptors").
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

__all__ = ["OpenFiles", "raise_open_files_limit"]

log = logging.getLogger("crdt_server.rlimits")

RESERVED = 64
"""Descriptors kept for the process itself (store files, pools, Redis, the listener)."""


@dataclass(frozen=True, slots=True)
class OpenFiles:
    """The limit before and after, and the hard limit (``resource.RLIM_INFINITY`` = -1)."""

    before: int
    soft: int
    hard: int

    @property
    def connections(self) -> int:
        """About how many connections the soft limit leaves room for."""
        if self.soft == resource.RLIM_INFINITY:
            return -1
        return max(0, self.soft - RESERVED)


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit (a no-op where it already is) and
    log both. Never fails: a platform that refuses keeps its limit, with a warning."""
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = before
    if before != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("open files: cannot raise the soft limit %d to %d: %s", before, hard, exc)
    limits = OpenFiles(before=before, soft=soft, hard=hard)
    raised = f"raised from {before} to {_shown(soft)}" if soft != before else _shown(soft)
    room = "unlimited" if limits.connections < 0 else str(limits.connections)
    log.info(
        "open files: soft limit %s (hard limit %s): room for about %s connections per process",
        raised,
        _shown(hard),
        room,
    )
    return limits


def _shown(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
