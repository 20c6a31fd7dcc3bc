"""``crdt-server wedding create``: a wedding made by the operator, offline, straight into
the store a server uses (SQLite or PostgreSQL), as ``POST /api/weddings`` with the admin
key makes it: an opaque id, the budget's currency, the profile, the couple's member with
their email (operator-set). Then it queues the couple's first sign-in link in the store's
outbox, where the server running on that store finds it and sends it
(:func:`queue_first_sign_in_link`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from pycrdt import Doc

from crdt_server.documents import DocumentError, apply_operation, seed
from crdt_server.errors import DomainError
from crdt_server.features import Command
from crdt_server.features.people import SCHEMA as PEOPLE_SCHEMA
from crdt_server.features.weddings.domain import (
    NewWedding,
    new_couple_sub,
    new_wedding,
    new_wedding_id,
)
from crdt_server.features.weddings.extension import queue_first_sign_in_link
from crdt_server.features.weddings.tables import SCHEMA, creation_rows
from crdt_server.settings import Settings
from crdt_server.storage import MovedDocument, Store, StoreError
from crdt_server.tools.commands import ToolError, store_options, with_store

__all__ = ["COMMANDS", "create_offline"]

ORIGIN = "cli:wedding-create"
"""The history origin of the documents the command writes."""


def _document(kind: str, wedding: str, op: dict[str, Any]) -> bytes:
    doc: Doc[Any] = Doc()
    with doc.transaction(origin=ORIGIN):
        seed(doc, kind, wedding, origin=ORIGIN)
        apply_operation(doc, kind, op, origin=ORIGIN)
    return doc.get_update()


async def create_offline(store: Store, wanted: NewWedding, settings: Settings) -> dict[str, Any]:
    """Write a new wedding into ``store`` in one transaction, then queue the couple's first
    sign-in link in its outbox for the running server to send; what was made."""
    wedding, sub = new_wedding_id(), new_couple_sub()
    await store.install(PEOPLE_SCHEMA)
    await store.install(SCHEMA)
    moved = [
        MovedDocument(
            f"{wedding}/budget", [_document("budget", wedding, wanted.currency_op())], []
        ),
        MovedDocument(
            f"{wedding}/timeline", [_document("timeline", wedding, wanted.profile_op())], []
        ),
        MovedDocument(
            f"{wedding}/tasks", [_document("tasks", wedding, {"op": "seed_checklist"})], []
        ),
    ]
    rows = creation_rows(wedding, sub, wanted, verified=True, open_signup=False)
    await store.put_documents(moved, ORIGIN, rows)
    queued = await queue_first_sign_in_link(store, settings, wanted.email)
    return {
        "id": wedding,
        "member": {"sub": sub, "role": "couple"},
        "sign_in_link": "queued" if queued else "not_sent",
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a wedding with its profile")
    create.add_argument(
        "--name", dest="names", action="append", required=True, help="a partner's name (1 or 2)"
    )
    create.add_argument("--your-name", help="the creator's own name (default: the first --name)")
    create.add_argument("--date", required=True, help="the wedding day (2027-06-12)")
    create.add_argument("--time-zone", required=True, help="its IANA time zone (Europe/Lisbon)")
    create.add_argument("--currency", required=True, help="the budget's currency (EUR)")
    create.add_argument("--email", required=True, help="the couple's email")
    create.add_argument("--json", action="store_true", help="one JSON object on stdout")
    store_options(create)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    data = {
        "names": args.names,
        "date": args.date,
        "time_zone": args.time_zone,
        "currency": args.currency,
        "email": args.email,
        **({"your_name": args.your_name} if args.your_name is not None else {}),
    }
    try:
        wanted = new_wedding(data)
        made = asyncio.run(
            with_store(settings, lambda store: create_offline(store, wanted, settings))
        )
    except (DomainError, DocumentError, StoreError) as exc:
        raise ToolError(str(exc)) from exc
    if args.json:
        print(json.dumps(made))
    else:
        print(f"wedding {made['id']}: couple {made['member']['sub']}")
        if made["sign_in_link"] == "queued":
            print(
                "the couple's sign-in link is queued: the server running on this store emails"
                " it within seconds",
                file=sys.stderr,
            )
        else:
            print(
                "no sign-in link was queued (no CRDT_SERVER_SMTP_URL, or this address had its"
                " links this hour): the couple asks for one with their email on the app's"
                " sign-in page (POST /api/sign-in)",
                file=sys.stderr,
            )
    return 0


COMMANDS = (
    Command(
        "wedding",
        "create a wedding with its profile and the couple's member",
        _run,
        _arguments,
    ),
)
