"""The SQL gateway, the same tests on every backend (SQLite, SQLite inline, PostgreSQL):
a table declared once, rows by name, one placeholder rule, transactions that commit whole
or not at all and take their turn with the update commits, feature rows written in the
updates' own transaction, and erasure of a wedding's rows."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from crdt_server.features.events import add_events, read_events, store_events
from crdt_server.storage import (
    DROPPED_FEATURE_ROWS,
    DocumentStore,
    FeatureRow,
    Gateway,
    NewEvent,
    NewUpdate,
    Once,
    SqliteStore,
    StoredEvent,
    StoreError,
    Table,
    schema_of,
)
from crdt_server.storage.gateway import Sql, Tx, dialect_sql, insert_sql, rows_as, statements
from tests.storage.conftest import OpenStore, writer_in_flight

NOTES = Table(
    "gw_notes",
    "(wedding {text} NOT NULL, id {text} NOT NULL, body {text} NOT NULL,"
    " at {real} NOT NULL, n {int} NOT NULL DEFAULT 0, data {blob},"
    " PRIMARY KEY (wedding, id))",
    indexes=("CREATE INDEX IF NOT EXISTS gw_notes_at ON {t}gw_notes (at)",),
)
LOG = Table("gw_log", "(id {id}, wedding {text} NOT NULL, what {text} NOT NULL DEFAULT '{}')")
SCHEMA = schema_of("gateway-test", NOTES, LOG)


class Note(msgspec.Struct, frozen=True):
    id: str
    body: str
    n: int


def note(wedding: str, id: str, body: str, n: int = 0) -> FeatureRow:
    values = (("wedding", wedding), ("id", id), ("body", body), ("at", 1.5), ("n", n))
    return FeatureRow("gw_notes", values)


def inserting(row: FeatureRow) -> Tx[int]:
    """A transaction step inserting ``row``: how many rows it inserted (0: the wedding
    is erased, its trigger dropped the row)."""
    count: int = yield Sql(insert_sql(row), tuple(value for _, value in row.values), count=True)
    return count


async def _gateway(store: DocumentStore) -> Gateway:
    await store.install(SCHEMA)
    return Gateway.of(store)


def test_one_placeholder_rule() -> None:
    text = "SELECT a FROM {t}x WHERE b = ? AND c IN (?, ?) AND d = '{}'"
    assert dialect_sql(text, "sqlite") == "SELECT a FROM x WHERE b = ? AND c IN (?, ?) AND d = '{}'"
    assert (
        dialect_sql(text, "postgres", '"s".')
        == """SELECT a FROM "s".x WHERE b = $1 AND c IN ($2, $3) AND d = '{}'"""
    )


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_rows_by_name_in_one_transaction(store: DocumentStore) -> None:
    gateway = await _gateway(store)

    def tx() -> Tx[list[Note]]:
        assert (yield from inserting(note("w1", "a", "first", 2))) == 1
        insert = "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)"
        yield Sql(insert, ("w1", "b", "second", 2.0))
        yield Sql(insert, ("w2", "c", "other", 3.0))
        counted = yield Sql("SELECT count(*) FROM {t}gw_notes WHERE wedding = ?", ("w1",))
        assert counted == [(2,)]
        bumped = "UPDATE {t}gw_notes SET n = n + 1 WHERE wedding = ?"
        assert (yield Sql(bumped, ("w1",), count=True)) == 2
        yield Sql("INSERT INTO {t}gw_log (wedding) VALUES (?)", ("w1",))
        return (yield from rows_as(Note, "SELECT id, body, n FROM {t}gw_notes WHERE id = ?", "a"))

    assert await gateway.run(tx()) == [Note("a", "first", 3)]
    found = await gateway.fetch_as(
        Note, "SELECT id, body, n FROM {t}gw_notes WHERE wedding = ? ORDER BY id", "w1"
    )
    assert found == [Note("a", "first", 3), Note("b", "second", 1)]
    assert await gateway.fetch("SELECT id, wedding, what FROM {t}gw_log") == [(1, "w1", "{}")]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_plain_statements_run_in_one_transaction(store: DocumentStore) -> None:
    """The one helper for a transaction of plain statements: what each received, in
    order (rows, or how many rows each touched); one that fails leaves nothing."""
    gateway = await _gateway(store)
    insert = "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)"
    touched = await gateway.run(
        statements(
            [(insert, ("w1", "a", "one", 1.0)), (insert, ("w1", "b", "two", 2.0))], count=True
        )
    )
    assert touched == [1, 1]
    rows = await gateway.run(
        statements([("SELECT id FROM {t}gw_notes ORDER BY id", ()), ("SELECT 1", ())])
    )
    assert rows == [[("a",), ("b",)], [(1,)]]
    with pytest.raises(StoreError):
        await gateway.run(
            statements([(insert, ("w1", "c", "x", 1.0)), (insert, ("w1", "a", "x", 1.0))])
        )
    assert await gateway.fetch("SELECT id FROM {t}gw_notes ORDER BY id") == [("a",), ("b",)]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_transactions_queued_together_share_one_commit_each_in_a_savepoint(
    store: DocumentStore,
) -> None:
    """The store's one write queue: gateway transactions queued together commit together
    (one commit), each in a savepoint of its own. One that raises is rolled back alone and
    its caller gets the error; a database error is thrown into the transaction whose
    statement failed, which may catch it (after a savepoint of its own) and go on."""
    gateway = await _gateway(store)
    insert = "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)"

    def adds(id: str) -> Tx[str]:
        yield Sql(insert, ("w1", id, "kept", 1.0))
        return id

    def changes_its_mind() -> Tx[None]:
        yield Sql(insert, ("w1", "gone", "rolled back", 1.0))
        raise LookupError("the feature changed its mind")

    def catches() -> Tx[str]:
        yield Sql("SAVEPOINT mine")
        try:
            yield Sql(insert, ("w1", "a", "the same key", 1.0))
        except StoreError:
            yield Sql("ROLLBACK TO SAVEPOINT mine")
        yield Sql("RELEASE SAVEPOINT mine")
        yield Sql(insert, ("w1", "c", "after the error", 1.0))
        return "went on"

    commits = store.commits if isinstance(store, SqliteStore) else 0
    outcomes = await asyncio.gather(
        gateway.run(adds("a")),
        gateway.run(changes_its_mind()),
        gateway.run(adds("b")),
        gateway.run(catches()),
        return_exceptions=True,
    )
    assert outcomes[0] == "a" and outcomes[2] == "b" and outcomes[3] == "went on"
    assert isinstance(outcomes[1], LookupError)
    assert await gateway.fetch("SELECT id FROM {t}gw_notes ORDER BY id") == [
        ("a",),
        ("b",),
        ("c",),
    ]
    if isinstance(store, SqliteStore):
        assert store.commits == commits + 1


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_transaction_that_raises_leaves_nothing(store: DocumentStore) -> None:
    gateway = await _gateway(store)

    def changes_its_mind() -> Tx[None]:
        yield from inserting(note("w1", "a", "gone"))
        yield from store_events([NewEvent("w1", "note.added", "{}")])
        raise LookupError("the feature changed its mind")

    def fails() -> Tx[None]:
        yield from inserting(note("w1", "b", "gone too"))
        yield from inserting(note("w1", "b", "the same key"))  # a database error

    with pytest.raises(LookupError):
        await gateway.run(changes_its_mind())
    with pytest.raises(StoreError):
        await gateway.run(fails())
    assert await gateway.fetch("SELECT id FROM {t}gw_notes") == []
    assert await read_events(Gateway.of(store), "w1") == []
    await gateway.run(inserting(note("w1", "c", "kept")))  # the store still writes
    assert await gateway.fetch("SELECT id FROM {t}gw_notes") == [("c",)]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_events_in_a_gateway_transaction_are_numbered_with_the_others(
    store: DocumentStore,
) -> None:
    gateway = await _gateway(store)
    await store.append([], steps=[store_events([NewEvent("w1", "first", "{}")])])

    def tx() -> Tx[list[StoredEvent]]:
        stored = yield from store_events([NewEvent("w1", "second", "{}")])
        yield from inserting(note("w1", "a", "with an event"))
        return stored

    stored = await gateway.run(tx())
    assert [e.seq for e in stored] == [2]
    assert [e.type for e in await read_events(Gateway.of(store), "w1")] == ["first", "second"]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_an_event_that_cannot_be_stored_is_refused_before_its_transaction(
    store: DocumentStore,
) -> None:
    """Text no backend can store (a lone surrogate) is refused when the events feature's
    step is made, before it is queued: it never fails the shared transaction of an append
    beside it, which commits with its own events."""
    bad = NewEvent("w1", "custom.note", '{"n":"\udc80"}')
    with pytest.raises(StoreError):
        store_events([bad])
    with pytest.raises(StoreError):
        await add_events(Gateway.of(store), [bad])
    good = store_events([NewEvent("w1", "custom.ok", "{}")])
    seqs = await store.append([NewUpdate("w1/guests", b"\x00\x00", "conn")], steps=[good])
    assert len(seqs) == 1
    assert [(e.seq, e.type) for e in await read_events(Gateway.of(store), "w1")] == [
        (1, "custom.ok")
    ]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_feature_rows_commit_with_their_updates(store: DocumentStore) -> None:
    gateway = await _gateway(store)
    seqs = await store.append(
        [NewUpdate("w1/guests", b"\x00\x00", "conn")],
        steps=[store_events([NewEvent("w1", "guest.added", "{}")])],
        rows=[note("w1", "a", "with the update")],
    )
    assert len(seqs) == 1
    assert await gateway.fetch("SELECT body FROM {t}gw_notes") == [("with the update",)]
    # A row that cannot be written never refuses its update (the domain observes, it never
    # gates): it is left out and counted; the update and the other rows commit.
    dropped = DROPPED_FEATURE_ROWS.get("gw_notes", 0)
    seqs = await store.append(
        [NewUpdate("w1/guests", b"\x00\x00", "conn")],
        rows=[note("w1", "b", "new"), note("w1", "a", "again")],  # "a": the key exists
    )
    assert len(seqs) == 1
    assert sorted(await gateway.fetch("SELECT id, body FROM {t}gw_notes")) == [
        ("a", "with the update"),
        ("b", "new"),
    ]
    assert len(await store.history("w1/guests")) == 2
    assert DROPPED_FEATURE_ROWS["gw_notes"] == dropped + 1
    with pytest.raises(StoreError):  # a table no installed schema declared
        await store.append([], rows=[FeatureRow("updates", (("doc", "x"),))])


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_deprecated_held_transaction_warns_and_still_takes_its_turn(
    store: DocumentStore,
) -> None:
    """``Gateway.transaction()`` (statements sent one at a time) is deprecated: calling it
    warns, naming what replaces it. Until it goes it works as before: appends queued while
    it is open wait for its commit (it holds the store's one writer), and it counts as one
    of the store's commits."""
    gateway = await _gateway(store)
    commits = store.commits if isinstance(store, SqliteStore) else 0
    with pytest.warns(DeprecationWarning, match=r"Gateway\.run\(tx\)"):
        held = gateway.transaction()
    async with held as tx:
        await tx.insert(note("w1", "a", "first"))
        appended = asyncio.ensure_future(
            store.append([NewUpdate("w1/guests", b"\x00\x00", "conn")])
        )
        for _ in range(20):
            await asyncio.sleep(0)
        assert not appended.done()  # queued behind this transaction
        assert await tx.fetch("SELECT count(*) FROM {t}gw_notes") == [(1,)]
    await appended
    assert await store.last_seq() == 1
    if isinstance(store, SqliteStore):
        assert store.commits == commits + 2


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_deprecated_held_transaction_counts_fails_and_rolls_back(
    store: DocumentStore,
) -> None:
    """Each call of a held transaction is one statement on the writer's connection (the
    backends' ordinary driver): ``execute`` says how many rows it touched,
    ``executemany`` runs once per tuple, ``run`` runs a feature's steps, a database error
    is a :class:`StoreError`, and an error leaving the block rolls back all it did."""
    gateway = await _gateway(store)
    with pytest.warns(DeprecationWarning):
        held = gateway.transaction()
    async with held as tx:
        many = [("w1", f"n{i}", "many", 1.0) for i in range(3)]
        await tx.executemany(
            "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)", many
        )
        assert await tx.execute("UPDATE {t}gw_notes SET n = n + 1 WHERE body = ?", "many") == 3
        assert await tx.run(inserting(note("w1", "ran", "by a step"))) == 1
    assert len(await gateway.fetch("SELECT id FROM {t}gw_notes")) == 4
    with pytest.warns(DeprecationWarning):
        held = gateway.transaction()
    with pytest.raises(StoreError):
        async with held as tx:
            assert await tx.execute("DELETE FROM {t}gw_notes") == 4
            await tx.execute("INSERT INTO {t}no_such_table (x) VALUES (?)", 1)
    with pytest.warns(DeprecationWarning):
        held = gateway.transaction()
    with pytest.raises(RuntimeError, match="owner"):
        async with held as tx:
            assert await tx.execute("DELETE FROM {t}gw_notes") == 4
            raise RuntimeError("the owner gave up")
    assert len(await gateway.fetch("SELECT id FROM {t}gw_notes")) == 4


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_appends_and_transactions_queued_together_share_one_commit(
    store: DocumentStore,
) -> None:
    """Appends and gateway transactions queued side by side (the features' writes beside
    the rooms' commits) commit together, in queue order, in one transaction: one commit,
    one fsync, where each change of kind in the queue used to end the transaction. A
    gateway transaction that raises is rolled back alone; the appends beside it commit."""
    gateway = await _gateway(store)

    def adds(key: str) -> Tx[str]:
        yield Sql(
            "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)",
            ("w1", key, "beside an append", 1.0),
        )
        return key

    def changes_its_mind() -> Tx[None]:
        yield Sql(
            "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)",
            ("w1", "gone", "rolled back", 1.0),
        )
        raise LookupError("the feature changed its mind")

    def update(n: int) -> NewUpdate:
        return NewUpdate("w1/guests", b"\x00\x00", f"conn{n}")

    commits = store.commits if isinstance(store, SqliteStore) else 0
    in_flight = await writer_in_flight(store)
    outcomes = await asyncio.gather(
        store.append([update(1)], rows=[note("w1", "r1", "with the first update")]),
        gateway.run(adds("a")),
        store.append([update(2), update(3)]),
        gateway.run(changes_its_mind()),
        gateway.run(adds("b")),
        store.append([update(4)], steps=[store_events([NewEvent("w1", "guest.added", "{}")])]),
        return_exceptions=True,
    )
    assert outcomes[0] == [1] and outcomes[2] == [2, 3] and outcomes[5] == [4]
    assert outcomes[1] == "a" and outcomes[4] == "b"
    assert isinstance(outcomes[3], LookupError)
    assert await gateway.fetch("SELECT id FROM {t}gw_notes ORDER BY id") == [
        ("a",),
        ("b",),
        ("r1",),
    ]
    assert [h.origin for h in await store.history("w1/guests")] == [
        "conn4",
        "conn3",
        "conn2",
        "conn1",
    ]
    assert [e.type for e in await read_events(Gateway.of(store), "w1")] == ["guest.added"]
    assert await in_flight == []
    if isinstance(store, SqliteStore):
        assert store.commits == commits + 2  # the one in flight, then theirs


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_erasing_a_wedding_erases_its_feature_rows_and_refuses_new_ones(
    store: DocumentStore,
) -> None:
    gateway = await _gateway(store)
    await gateway.run(inserting(note("w1", "a", "erased")))
    await gateway.run(inserting(note("w2", "b", "kept")))
    await store.erase_wedding("w1")
    assert await gateway.fetch("SELECT id FROM {t}gw_notes") == [("b",)]
    assert await gateway.run(inserting(note("w1", "c", "refused"))) == 0
    await store.append([], rows=[note("w1", "d", "refused too")])
    assert await gateway.fetch("SELECT id FROM {t}gw_notes") == [("b",)]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_what_events_make_commits_with_them_or_not_at_all(store: DocumentStore) -> None:
    """``add_events(then=...)``: an emergency and the rows it makes (its notifications, its
    re-send) are one transaction. A step that fails leaves no event; a repeat of the same
    ``Idempotency-Key`` makes nothing again."""
    gateway = await _gateway(store)
    made: list[int] = []

    def then(stored: list[StoredEvent]) -> Tx[None]:
        made.extend(e.seq for e in stored)
        yield Sql(
            "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)",
            ("w1", "n", "x", 1.0),
        )

    def failing(stored: list[StoredEvent]) -> Tx[None]:
        yield Sql("INSERT INTO {t}no_such_table (x) VALUES (?)", (1,))

    with pytest.raises(Exception):  # noqa: B017 - whatever the backend's error is
        await add_events(gateway, [NewEvent("w1", "custom.alarm", "{}")], then=failing)
    assert await read_events(gateway, "w1") == []
    once = Once("w1:ann:events", "k1", "f", 4_000_000_000.0)
    first = await add_events(gateway, [NewEvent("w1", "custom.alarm", "{}")], once=once, then=then)
    again = await add_events(gateway, [NewEvent("w1", "custom.alarm", "{}")], once=once, then=then)
    assert first.first and not again.first and made == [first.events[0].seq]
    assert [e.seq for e in await read_events(gateway, "w1")] == made
    assert await gateway.fetch("SELECT body FROM {t}gw_notes WHERE wedding = ?", "w1") == [("x",)]


def _adds(id: str) -> Tx[str]:
    yield Sql(
        "INSERT INTO {t}gw_notes (wedding, id, body, at) VALUES (?, ?, ?, ?)",
        ("w1", id, "queued", 1.0),
    )
    return id


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_queued_transaction_commits_even_if_its_caller_is_cancelled(
    store: DocumentStore,
) -> None:
    """Once ``gateway.run`` has queued a transaction, cancelling its caller (a client that
    went away mid-request) does not take it back: it commits in its turn, all of it."""
    gateway = await _gateway(store)
    in_flight = await writer_in_flight(store)
    caller = asyncio.ensure_future(gateway.run(_adds("a")))
    await asyncio.sleep(0)  # queued behind the transaction in flight
    assert not caller.done()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert await in_flight == []
    await gateway.run(statements([("SELECT 1", ())]))  # queued after it: it has ended
    assert await gateway.fetch("SELECT id, body FROM {t}gw_notes") == [("a", "queued")]


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_transactions_queued_when_the_store_closes_commit_first(
    open_store: OpenStore,
) -> None:
    """Closing the store carries out the gateway transactions already queued (as it does
    the appends) before it stops its writer: each caller gets its result, and the rows are
    there when the store opens again."""
    store = await open_store()
    gateway = await _gateway(store)
    in_flight = await writer_in_flight(store)
    queued = [asyncio.ensure_future(gateway.run(_adds(id))) for id in ("a", "b", "c")]
    appended = asyncio.ensure_future(store.append([NewUpdate("w1/guests", b"\x00\x00", "c1")]))
    await asyncio.sleep(0)  # all of them queued
    await store.close()
    assert await in_flight == []
    assert [await job for job in queued] == ["a", "b", "c"]
    assert await appended == [1]
    with pytest.raises(StoreError):  # closed: nothing more is queued
        await gateway.run(_adds("d"))
    again = await _gateway(await open_store())
    assert await again.fetch("SELECT id FROM {t}gw_notes ORDER BY id") == [
        ("a",),
        ("b",),
        ("c",),
    ]
