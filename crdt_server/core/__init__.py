"""The sync core: rooms, the room registry, sessions, connections, the CRDT document
wrapper, presence, hooks, limits and metrics."""
