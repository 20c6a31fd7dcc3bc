"""The real server as a child process: kept importable for the tests that use this name.

The implementation is the testing kit's :class:`crdt_server.testing.ServerProcess`.
"""

from crdt_server.testing.server import ServerProcess, served

__all__ = ["ServerProcess", "served"]
