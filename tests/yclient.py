"""The socket client of the tests: kept importable under this name.

The implementation is the testing kit's :class:`crdt_server.testing.YClient`.
"""

from crdt_server.testing.client import YClient

__all__ = ["YClient"]
