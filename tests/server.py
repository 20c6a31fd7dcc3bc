"""The real server as a child process: kept importable for the tests that use this name.

The implementation is the testing kit's :class:`crdt_server.testing.ServerProcess`.
:class:`FreshWedding` is for a module whose tests share one server.
"""

import asyncio
import json
import os
import uuid
from pathlib import Path

from crdt_server.auth.permissions import DEFAULT_MATRIX
from crdt_server.testing import forkserver
from crdt_server.testing.server import ServerProcess, served

__all__ = ["FAMILY_WRITES", "FreshWedding", "ServerProcess", "cli", "served"]

ROOT = Path(__file__).resolve().parents[1]


async def cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, stdin: bytes = b""
) -> tuple[int, str, str]:
    """Run ``crdt-server ARGS`` (``python -m crdt_server``, forked from an interpreter that
    has imported it: :mod:`crdt_server.testing.forkserver`) to completion, without this
    process's ``CRDT_SERVER_*`` settings: its exit code, standard output and error."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRDT_SERVER_")}
    code, out, err = await asyncio.to_thread(
        forkserver.run,
        "crdt_server",
        args,
        env={**environ, **(env or {})},
        cwd=cwd,
        input=stdin,
        timeout=60,
    )
    return code, out.decode(), err.decode()


FAMILY_WRITES = {
    "CRDT_SERVER_PERMISSIONS": json.dumps(
        {
            role: {**docs, **({"guests": "write", "seating": "write"} if role == "family" else {})}
            for role, docs in DEFAULT_MATRIX.items()
        }
    )
}
"""Settings that give family ``write`` on the guests and the seating, as before issue 47
made it ``operate``: for the tests of what writers of different ranks do to each other
(concurrent edits, conflicts, note sessions over the socket)."""


class FreshWedding:
    """The wedding of the running test, for a module whose tests share one server: each
    test calls :meth:`renew` (an autouse fixture) and works on a wedding no other test saw.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.id = "w1"

    def renew(self) -> None:
        self.id = f"{self.prefix}-{uuid.uuid4().hex[:12]}"

    def at(self, path: str = "") -> str:
        """The URL of the wedding, then ``path``."""
        return f"/api/weddings/{self.id}{path}"
