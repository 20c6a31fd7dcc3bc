"""Data tools for operators and integrators: backup, restore, export, import, check, compact.

Each works on a store through :class:`storage.DocumentStore` (SQLite or PostgreSQL, chosen
by the same settings as ``crdt-server serve``), except backup and restore, which copy the
embedded SQLite file with SQLite's online backup API. ``crdt_server.cli`` wires them to
subcommands; ``crdt_server.tools.export`` is also the HTTP export route's format.
"""
