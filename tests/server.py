"""The real server as a child process: kept importable for the tests that use this name.

The implementation is the testing kit's :class:`crdt_server.testing.ServerProcess`.
:class:`FreshWedding` is for a module whose tests share one server.
"""

import uuid

from crdt_server.testing.server import ServerProcess, served

__all__ = ["FreshWedding", "ServerProcess", "served"]


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
