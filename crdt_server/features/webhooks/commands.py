"""``crdt-server webhooks``: the outgoing webhook endpoints as an operator sees them,
offline, straight from the store (SQLite or PostgreSQL), with no server running.

``crdt-server webhooks list [--wedding W] [--json]`` prints one line per endpoint: its id,
wedding, the receiver's host (never the URL's path or query, which may hold a receiver's
own secret), its state, its cursor (the last event seq handed to it, of the wedding's
newest), its pending deliveries and its dead letters (deliveries whose every attempt
failed; they stay listed and replayable through the API). The state is ``disabled`` (by a
person, a 410 answer, or its creator's revocation or erasure; the reason is in the JSON),
``failing`` (enabled, and its latest attempt of the last two days failed) or ``enabled``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from crdt_server.features import Command
from crdt_server.features.webhooks.tables import WebhookTables
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, StoreError
from crdt_server.tools.commands import ToolError, store_options, wedding_id, with_store

__all__ = ["COMMANDS", "EndpointLine", "endpoint_lines"]


@dataclass(frozen=True, slots=True)
class EndpointLine:
    """One endpoint as ``crdt-server webhooks list`` shows it."""

    id: str
    wedding: str
    host: str
    state: str
    """``enabled``, ``failing`` or ``disabled``."""
    reason: str | None
    """Why it is disabled (``None``: it is not)."""
    cursor: int
    """The last event seq handed to it (deliveries made up to there)."""
    last_seq: int
    """The wedding's newest event seq."""
    pending: int
    dead_letters: int


async def endpoint_lines(store: DocumentStore, wedding: str | None = None) -> list[EndpointLine]:
    """Every endpoint of the store (or of one wedding), by wedding then id."""
    tables = WebhookTables(store)
    rows = await tables.listing(wedding)
    lines = []
    for row in rows:
        if row.disabled:
            state = "disabled"
        elif row.last_ok is not None and not row.last_ok:
            state = "failing"
        else:
            state = "enabled"
        lines.append(
            EndpointLine(
                row.id,
                row.wedding,
                _host(row.url),
                state,
                row.disabled or None,
                int(row.after_seq),
                int(row.last_seq),
                int(row.pending),
                int(row.failed),
            )
        )
    return lines


def _host(url: str) -> str:
    """The receiver's host (and port, if the URL names one): no user, path or query."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "?"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


def _arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="subcommand", required=True)
    listing = sub.add_parser(
        "list",
        help="each endpoint: id, wedding, receiver host, state, cursor, pending deliveries "
        "and dead letters",
        description="Each outgoing webhook endpoint of the store, read offline.",
    )
    listing.add_argument("--wedding", type=wedding_id, help="only this wedding's endpoints")
    listing.add_argument("--json", action="store_true", help="one JSON array on stdout")
    store_options(listing)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    async def read(store: DocumentStore) -> list[EndpointLine]:
        return await endpoint_lines(store, args.wedding)

    try:
        lines = asyncio.run(with_store(settings, read))
    except StoreError as exc:
        raise ToolError(
            f"cannot read the webhook tables (has a server with webhooks used this store?): {exc}"
        ) from exc
    out = sys.stdout
    if args.json:
        print(json.dumps([asdict(line) for line in lines], indent=1), file=out)
        return 0
    header = ("id", "wedding", "host", "state", "cursor", "pending", "dead_letters")
    table = [header] + [
        (
            line.id,
            line.wedding,
            line.host,
            line.state,
            f"{line.cursor}/{line.last_seq}",
            str(line.pending),
            str(line.dead_letters),
        )
        for line in lines
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip(), file=out)
    print(f"{len(lines)} endpoint{'' if len(lines) == 1 else 's'}", file=out)
    return 0


COMMANDS = (
    Command(
        "webhooks",
        "outgoing webhook endpoints, read offline from the store",
        _run,
        _arguments,
    ),
)
"""The webhooks feature's subcommands of ``crdt-server``."""
