"""The WebSocket transport: the seam the core's sessions talk through
(:mod:`~crdt_server.wire.transport`), the native RFC 6455 protocol uvicorn runs for the sync
path (:mod:`~crdt_server.wire.websocket`), the request-head and body deadlines
(:mod:`~crdt_server.wire.http_head`), the hand-off of a connection to the worker that owns
its wedding (:mod:`~crdt_server.wire.affinity`) with a deadline
(:mod:`~crdt_server.wire.handoff`), and the one module that imports uvicorn's
internals (:mod:`~crdt_server.wire.uvicorn_private`).

The wire knows frames, sockets and HTTP heads, never rooms or routes: what it needs from the
upgrade checks is the :class:`~crdt_server.wire.gate.UpgradeGate` protocol, which the edge's
gate (:class:`crdt_server.edge.upgrade.Gate`) satisfies. Importing this package imports
nothing (the core imports :mod:`~crdt_server.wire.transport` without uvicorn).
"""
