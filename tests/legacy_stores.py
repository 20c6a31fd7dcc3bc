"""Stores written by an earlier release, and what they serve.

:func:`fill` writes, through the store and feature APIs, one of everything a store keeps:
documents (one compacted) with their history, events (one set under an idempotency key),
a ticket, revocations, a tombstone, thread members, threads, messages, read marks,
notifications and outbox rows, a webhook endpoint (its event cursor) with deliveries, an
inbound source with a delivery seen, a calendar token and feed items, and restore points.
:func:`served` reads all of it back through the same public APIs, as JSON-able values.

``scripts/make-legacy-fixtures`` ran both on the tip of ``main`` at commit 7ae9b59 and saved
the SQLite file, a PostgreSQL dump and what :func:`served` answered then under
``tests/fixtures/legacy/``; ``tests/storage/test_legacy_fixtures.py`` opens those with the
current code and compares. :func:`served` must keep answering the same for them: when an
API it calls changes, change the call, never the fixtures.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
from pycrdt import Doc, Map

from crdt_server.actor import Actor
from crdt_server.features import install_tables
from crdt_server.features import integrations as integrations_feature
from crdt_server.features import versions as versions_feature
from crdt_server.features import webhooks as webhooks_feature
from crdt_server.features.events import add_events, last_event_seq, read_events, store_events
from crdt_server.features.events.tables import SCHEMA as EVENTS
from crdt_server.features.events.tables import put_ticket, take_ticket
from crdt_server.features.integrations.tables import CalendarToken, InboundSource, IntegrationStore
from crdt_server.features.notifications.tables import SCHEMA as NOTIFICATIONS
from crdt_server.features.threads.export import THREADS, export_threads
from crdt_server.features.versions.tables import VersionPoint, VersionStore
from crdt_server.features.webhooks.service import WebhookEndpoints, insert_delivery
from crdt_server.features.webhooks.tables import WebhookTables
from crdt_server.storage import (
    DocumentStore,
    EventFilter,
    Gateway,
    MovedDocument,
    NewEvent,
    NewUpdate,
    Once,
    Revocation,
)
from crdt_server.storage.gateway import Sql

__all__ = ["FAR", "fill", "served"]

WEDDING = "w1"
GONE = "w-gone"
FAR = 4_000_000_000.0
"""An expiry no test run reaches."""
FINGERPRINTS = {"t1": "f-one", "t2": "f-two"}


def _update(key: str, value: str) -> bytes:
    doc = Doc(client_id=7)
    doc["root"] = root = Map()
    root[key] = value
    return doc.get_update()


async def fill(store: DocumentStore) -> dict[str, Any]:
    """Write one of everything; returns what :func:`served` needs to ask for it again."""
    now = time.time()
    guests = f"{WEDDING}/guests"
    seqs = await store.append(
        [
            NewUpdate(guests, _update("a", "1"), "conn-1", "ada", "planner", 7),
            NewUpdate(guests, _update("b", "2"), "conn-1", "ada", "planner", 7),
            NewUpdate(f"{WEDDING}/budget", _update("c", "3"), "http", "bob", "couple"),
        ],
        steps=[
            store_events(
                [NewEvent(WEDDING, "guest.added", '{"id":"g1"}', guests, "ada", "planner")]
            )
        ],
    )
    await store.append([NewUpdate(guests, _update("d", "4"), "conn-2", "eve", "vendor", 9)])
    snapshot = Doc()
    log = await store.load(guests)
    assert log is not None
    for data in log.updates:
        snapshot.apply_update(data)
    await store.compact(guests, seqs[1], snapshot.get_update())
    await add_events(
        Gateway.of(store),
        [
            NewEvent(WEDDING, "vendor.booked", '{"id":"v1"}', None, "bob", "couple", "urgent"),
            NewEvent(WEDDING, "note", "{}", None, audience='["ada"]'),
        ],
        once=Once("events", "key-1", "fp-1", FAR),
    )
    await store.install(EVENTS)
    await put_ticket(Gateway.of(store), "ticket-digest", '{"sub":"ada"}', FAR)
    await store.revoke(Revocation("mallory", WEDDING, now - 10), forget_before=0)
    await store.revoke(Revocation("trudy", None, now - 5), forget_before=0)
    await store.append([NewUpdate(f"{GONE}/guests", _update("x", "y"), "conn-3")])
    await store.erase_wedding(GONE)

    # Threads: an import (the feature's rows with the wedding's documents), then the rows
    # the feature writes later on its own: a notification and a queued email.
    for schema in (*THREADS.schemas, NOTIFICATIONS):
        await store.install(schema)
    section = {
        "members": [
            {"sub": "ada", "role": "planner", "name": "Ada", "email": "ada@example.com"},
            {"sub": "bob", "role": "couple", "name": "Bob", "email": None,
             "participation": "mentions", "email_notifications": False},
        ],
        "threads": [
            {
                "id": "th1", "subject": "Seating of table 4", "kind": "seating",
                "status": "open", "priority": "urgent",
                "anchors": [{"doc": "seating", "id": "table-4"}],
                "creator": {"sub": "ada", "role": "planner"},
                "participants": [{"sub": "ada", "role": "planner"},
                                 {"sub": "bob", "role": "couple"}],
                "created_at": "2026-11-20T10:00:00+00:00",
                "updated_at": "2026-11-20T11:00:00+00:00",
                "last_seq": 2,
                "messages": [
                    {"id": "m1", "seq": 1, "author": {"sub": "ada", "role": "planner"},
                     "body": "Who sits next to aunt May?", "reply_to": None,
                     "mentions": ["bob"], "priority": "urgent",
                     "created_at": "2026-11-20T10:00:00+00:00", "edited_at": None,
                     "deleted": False, "reactions": {"👍": ["bob"]}},
                    {"id": "m2", "seq": 2, "author": {"sub": "bob", "role": "couple"},
                     "body": "Uncle Joe", "reply_to": "m1", "mentions": [],
                     "priority": "normal", "created_at": "2026-11-20T11:00:00+00:00",
                     "edited_at": "2026-11-20T11:30:00+00:00", "deleted": False},
                ],
                "reads": [{"sub": "bob", "up_to": 1}],
            }
        ],
    }  # fmt: skip
    await store.put_documents(
        [MovedDocument(f"{WEDDING}/seating", [_update("t", "4")], [])],
        "import",
        rows=THREADS.rows(section, WEDDING),
    )
    threads = Gateway.of(store)

    def notes() -> Any:
        yield Sql(
            "INSERT INTO {t}notifications (wedding, sub, reason, thread, message,"
            " actor, actor_role, priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (WEDDING, "bob", "mention", "th1", "m1", "ada", "planner", "urgent", now),
        )
        yield Sql(
            "INSERT INTO {t}notification_outbox (wedding, sub, reason, thread, message, priority,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (WEDDING, "bob", "mention", "th1", "m1", "urgent", now),
        )

    await threads.run(notes())

    # Webhooks: an endpoint (its cursor is the wedding's last event seq) and deliveries.
    await install_tables(store, [webhooks_feature.FEATURE])
    tables = WebhookTables(store)
    endpoints = WebhookEndpoints(tables, lambda: None)
    endpoint, _, _ = await endpoints.create(
        WEDDING, "https://hooks.example.com/in", ["guest.*"], "guests", creator="ada"
    )
    await tables.transaction(
        [
            insert_delivery(endpoint, "d1", 1, "guest.added", '{"n":1}', now, now),
            insert_delivery(endpoint, "d2", None, "webhook.test", '{"n":2}', now, now + 60),
            (
                "UPDATE {t}webhook_deliveries SET status = 'delivered', done_at = ?,"
                " last_status = 200 WHERE id = 'd1'",
                (now,),
            ),
            (
                "UPDATE {t}webhook_endpoints SET after_seq = ? WHERE id = ?",
                (await last_event_seq(Gateway.of(store), WEDDING), endpoint.id),
            ),
        ]
    )

    # Integrations: an inbound source with a delivery seen, a feed token and feed items.
    await install_tables(store, [integrations_feature.FEATURE])
    rows = IntegrationStore(store)
    await rows.add_source(InboundSource(WEDDING, "crm", "s3cret", '{"guests":"write"}', now, "ada"))
    assert await rows.claim(WEDDING, "crm", "msg-1", now) is None
    await rows.finish(WEDDING, "crm", "msg-1", '{"status":200}')
    await rows.add_token(CalendarToken(WEDDING, "cal1", now, "bob", "phone"), "cal-digest")
    await rows.reconcile(WEDDING, FINGERPRINTS, now)

    # Versions: a restore point of the guest list.
    await install_tables(store, [versions_feature.FEATURE])
    versions = VersionStore(store)
    point = VersionPoint(guests, seqs[1], now, (Actor("ada", "planner"),))
    await versions.add(WEDDING, point, snapshot.get_update())
    return {"now": now, "endpoint": endpoint.id, "guests_seq": seqs[1]}


def _plain(value: object) -> Any:
    """JSON-able, bytes as hex (msgspec would give base64; either is exact)."""
    return json.loads(msgspec.json.encode(value, enc_hook=_hex))


def _pairs(point: VersionPoint) -> dict[str, Any]:
    """A restore point with its actors as ``[sub, role]`` pairs, as the fixtures were
    written (before ``Actor``)."""
    return {
        "doc": point.doc,
        "seq": point.seq,
        "at": point.at,
        "actors": [[a.sub, a.role] for a in point.actors],
    }


def _hex(value: object) -> object:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    raise NotImplementedError(type(value))


async def served(store: DocumentStore, facts: dict[str, Any]) -> dict[str, Any]:
    """Everything :func:`fill` wrote, as the public APIs serve it (reads only, except a
    ticket taken and a repeated idempotent call, which change nothing else)."""
    now = float(facts["now"])
    guests = f"{WEDDING}/guests"
    out: dict[str, Any] = {}
    out["list"] = await store.list()
    out["logs"] = {doc: _plain(await store.load(doc)) for doc in out["list"]}
    out["history"] = {doc: _plain(await store.history(doc)) for doc in out["list"]}
    out["last_seq"] = await store.last_seq()
    out["last_seqs"] = await store.last_seqs(out["list"])
    out["docs_of"] = {str(k): v for k, v in (await store.docs_of(range(1, 20))).items()}
    out["events"] = _plain(await read_events(Gateway.of(store), WEDDING, limit=100))
    out["events_viewer"] = _plain(
        await read_events(Gateway.of(store), WEDDING, where=EventFilter(viewer="bob"))
    )
    out["last_event_seq"] = await last_event_seq(Gateway.of(store), WEDDING)
    again = await add_events(
        Gateway.of(store),
        [NewEvent(WEDDING, "ignored", "{}")],
        once=Once("events", "key-1", "fp-1", FAR),
    )
    out["once"] = _plain(again)
    out["tombstones"] = sorted(await store.tombstones())
    out["revocations"] = _plain(await store.revocations())
    await store.install(EVENTS)  # its tickets (a store of that time made the table)
    out["ticket"] = await take_ticket(Gateway.of(store), "ticket-digest", now)

    # The threads' readers, and the inbox's, read their tables once their features have
    # installed their schemas (what a server's start does): on a store of a release before
    # schema versions, that renames the directory's and the inbox's tables (version 2).
    for schema in (*THREADS.schemas, NOTIFICATIONS):
        await store.install(schema)
    threads = Gateway.of(store)
    out["threads"] = await export_threads(threads, WEDDING)
    out["thread_notifications"] = _plain(
        await threads.fetch(
            "SELECT id, wedding, sub, reason, thread, message, actor, actor_role, priority,"
            " created_at, read FROM {t}notifications ORDER BY id"
        )
    )
    out["thread_outbox"] = _plain(
        await threads.fetch(
            "SELECT id, wedding, sub, reason, thread, message, priority, created_at,"
            " claimed_until FROM {t}notification_outbox ORDER BY id"
        )
    )
    out["thread_search"] = await _search(threads)

    endpoints = WebhookEndpoints(WebhookTables(store), lambda: None)
    found = await endpoints.endpoints(WEDDING, after="", limit=10)
    out["endpoints"] = _plain(found)
    endpoint = await endpoints.endpoint(WEDDING, str(facts["endpoint"]))
    assert endpoint is not None
    out["deliveries"] = _plain(
        await endpoints.deliveries(endpoint, status=None, after=None, limit=10)
    )

    rows = IntegrationStore(store)
    out["sources"] = _plain(await rows.sources(WEDDING))
    out["source"] = _plain(await rows.source(WEDDING, "crm"))
    out["seen"] = _plain(await rows.claim(WEDDING, "crm", "msg-1", now))
    out["tokens"] = _plain(await rows.tokens(WEDDING))
    out["token_wedding"] = await rows.token_wedding("cal-digest")
    out["feed"] = _plain(await rows.reconcile(WEDDING, FINGERPRINTS, now))

    # Its restore points are read once its schema is installed, as a server does at start
    # (version 2 adds what changed since the point before).
    await install_tables(store, [versions_feature.FEATURE])
    versions = VersionStore(store)
    out["points"] = _plain([_pairs(p) for p in await versions.points(guests)])
    state = await versions.state(guests, 10**6)
    out["state"] = _plain(None if state is None else [state.seq, state.data])
    # The log as of a restore point, as the earlier API gave it (rows of [seq, data]): the
    # guest list was compacted up to that point, so it is one snapshot row, at its seq.
    log = await versions.log_upto(guests, int(facts["guests_seq"]))
    assert log is not None and len(log.updates) == 1 and log.first_seq == log.last_seq
    out["log_upto"] = _plain([[log.last_seq, log.updates[0]]])
    out["actors"] = _plain(
        [[a.sub, a.role] for a in await versions.actors_between(guests, 0, 10**6)]
    )
    return out


async def _search(threads: Gateway) -> list[str]:
    """The threads a word finds (each backend's own full-text index)."""
    if threads.dialect == "sqlite":
        sql = "SELECT DISTINCT thread FROM thread_search WHERE thread_search MATCH ?"
        rows = await threads.fetch(sql, "aunt")
    else:
        sql = (
            "SELECT DISTINCT thread FROM {t}thread_messages"
            " WHERE search @@ plainto_tsquery('simple', ?)"
        )
        rows = await threads.fetch(sql, "aunt")
    return sorted(str(r[0]) for r in rows)
