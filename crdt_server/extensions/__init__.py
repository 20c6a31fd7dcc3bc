"""Features plugged into the core through its hooks (crdt_server.core.hooks): conflicts,
the event log, and what builds on them."""
