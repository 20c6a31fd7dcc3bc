"""The real server as a child process: kept importable for the tests that use this name.

The implementation is the testing kit's :class:`crdt_server.testing.ServerProcess`.
:class:`FreshWedding` is for a module whose tests share one server.
"""

import json
import uuid

from crdt_server.auth.permissions import DEFAULT_MATRIX
from crdt_server.testing.server import ServerProcess, served

__all__ = ["FAMILY_WRITES", "FreshWedding", "ServerProcess", "served"]

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
