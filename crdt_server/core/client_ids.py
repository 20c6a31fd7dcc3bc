"""Who owns each Yjs client id of a wedding: the person who first wrote under it.

A Yjs item is named by its (client id, clock), and the client id is the only thing in an
update that says whose it is. Every reader sees a wedding's client ids (state vectors,
awareness), so without a rule a writer could take another person's id at that person's
next clock: the server would keep the squatter's item, and the owner's own item with the
same (client, clock) would be dropped as already known, for good.

So each client id of a wedding is **owned**: by the person (their token's ``sub`` in that
wedding, whichever device or token they write from) who first wrote new items under it,
or by the server (:data:`SERVER`) for the ids it writes under itself (each process's
``RoomServices.client_id``, the ids taken after a rollback, the projections' writers),
whoever asked for the edit. An update whose **new** items (past what the document holds
of that client) name an id owned by someone else is refused whole before it is applied
(:class:`~crdt_server.errors.ClientIdTaken`: 4409 on ``/sync``, a CLOSE of that document
on ``/collab``, 422 over HTTP). Content the document already holds is not a claim: a
client's sync step 2 may carry other people's items it received while it synced.

The first claim of an id is decided in the store, by an insert-if-absent and a read of
the row in the same transaction, before the update that makes it is applied: two
processes or hosts that see one new id at once cannot both be granted it. The claims
asked while one batch is in its transaction share the next (:class:`_Batches`), in a few
statements whatever their number (:func:`_claims`); a gateway transaction of their own,
so a refused claim never fails the shared commit of other rooms' updates. This process
then knows the owner for as long as it keeps the entry (:data:`MAX_KNOWN` entries).

The ``yjs_client_owners`` table is the core's (installed at start with the quarantine,
erased with its wedding). A store of the release before is filled once, when the table is
made, from the update log's senders: each single-client update's sender owns its id,
the first one by seq; an id of the server's own edits (an origin ``server...``) is the
server's. Ids that no single-client update carried have no recorded sender: the first
writer after the upgrade owns them (CHANGELOG).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, Protocol

from pycrdt import Doc

from crdt_server import clock
from crdt_server.codec.items import Item, read_items
from crdt_server.codec.protocol import write_var_uint
from crdt_server.codec.updates import UpdateSummary
from crdt_server.core.adoption import ADOPTIONS_SCHEMA, Adoptions, Window
from crdt_server.core.metrics import Metrics
from crdt_server.core.payloads import Sender
from crdt_server.errors import ClientIdTaken
from crdt_server.storage import DocumentStore, Migration, StoreError
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, schema_of

__all__ = [
    "CLIENT_OWNERS_SCHEMA",
    "FROM_THE_LOG",
    "MAX_KNOWN",
    "SERVER",
    "ClientIds",
    "Relayed",
    "differing",
    "owner_of",
]

SERVER = ""
"""The owner of the ids the server writes under (no person's ``sub`` is empty)."""

MAX_KNOWN = 200_000
"""Owners this process keeps in memory (least recently used go first; a forgotten one is
read again from the store when next needed)."""

CLIENT_OWNERS = Table(
    "yjs_client_owners",
    "(wedding {ctext} NOT NULL, client_id {int} NOT NULL, sub {text} NOT NULL,"
    " at {real} NOT NULL, PRIMARY KEY (wedding, client_id))",
)
_FIRSTS = (
    "SELECT wedding, client_id, owner, created_at FROM (SELECT {wedding} AS wedding,"
    " client_id, CASE WHEN origin LIKE 'server%' THEN '' ELSE sub END AS owner, created_at,"
    " ROW_NUMBER() OVER (PARTITION BY {wedding}, client_id ORDER BY seq) AS n"
    " FROM {history} WHERE client_id IS NOT NULL AND (sub <> '' OR origin LIKE 'server%'))"
    " AS firsts WHERE n = 1 ON CONFLICT DO NOTHING"
)
FROM_THE_LOG = Migration(
    2,
    sqlite=(
        "INSERT INTO yjs_client_owners (wedding, client_id, sub, at) "
        + _FIRSTS.format(wedding="substr(doc, 1, instr(doc, '/') - 1)", history="history"),
    ),
    postgres=(
        "INSERT INTO {s}.yjs_client_owners (wedding, client_id, sub, at) "
        + _FIRSTS.format(wedding="split_part(doc, '/', 1)", history="{s}.history"),
    ),
)
"""Version 2: the owners the update log names, recorded once (see the module docstring):
each client id of a single-client update is owned by its first sender by seq, the server
for an origin ``server...``."""
CLIENT_OWNERS_SCHEMA = schema_of("client_owners", CLIENT_OWNERS, migrations=(FROM_THE_LOG,))
"""The core's own table of owners (installed at start; erased with the wedding)."""


class Replica(Protocol):
    """What :meth:`ClientIds.own` reads of a room's document (a
    :class:`~crdt_server.core.crdt.RoomDocument`)."""

    @property
    def doc(self) -> Doc[Any]: ...

    def state(self) -> dict[int, int]: ...


class Relayed(ClientIdTaken):
    """An update whose new items are under ids other people own, while an adoption window
    is open (:mod:`crdt_server.core.adoption`): the room may take it in split by owner;
    else it is refused as :class:`ClientIdTaken` is."""

    def __init__(self, owners: Mapping[int, str], window: Window) -> None:
        super().__init__(min(owners))
        self.owners = dict(owners)
        """The ids, each with its owner."""
        self.window = window


def owner_of(sender: Sender) -> str:
    """Who owns what ``sender`` writes under a new id: the server for its own edits (an
    origin ``server...``: the projections, the conflicts keeper), else the person."""
    return SERVER if sender.origin.startswith("server") else sender.actor.sub


_Ask = tuple[str, list[int], str]
"""One claim: the wedding, the ids, the owner asked for."""

_Pair = tuple[str, int]
"""A wedding and one of its client ids."""

_PAIRS = 400
"""Ids read or inserted per statement of a batch's claims (at most four parameters each:
well under both backends' limits)."""

_ASK_OWNERS = "SELECT wedding, client_id, sub FROM {t}yjs_client_owners WHERE "
_INSERT_OWNERS = "INSERT INTO {t}yjs_client_owners (wedding, client_id, sub, at) VALUES "


def _claims(asks: list[_Ask], now: float) -> Tx[list[dict[int, str]]]:
    """Every ask of a batch, each decided as one claim alone would be, in order, in one
    transaction of a few statements whatever the batch holds: the owners of every id
    asked, read at once; the ids nobody owned inserted if absent, at once; those read
    back (on PostgreSQL another process may have inserted one first: its owner is the
    answer). An ask that meets an id of someone else's (owned before, or granted to an
    earlier ask of the batch) claims none of its ids and is told the owners read up to
    that one; two asks of one id in one batch: the first's.

    Statements, not asks, are what a transaction on the writer thread costs: it needs the
    interpreter back after each one, behind a busy event loop. With three statements per
    id, the 10,000 claims of a step of new writers made transactions of up to 67,469
    statements, 6.5 s long (product scenario, 4,000 updates/s)."""
    stored = yield from _owners(sorted({(w, c) for w, clients, _ in asks for c in clients}))
    seen, granted, accepted = dict(stored), dict[_Pair, str](), list[bool]()
    for wedding, clients, owner in asks:
        told = _told(wedding, clients, owner, seen)
        accepted.append(all(found == owner for found in told.values()))
        if accepted[-1]:
            mine = {(wedding, c): owner for c in clients if c not in told}
            granted.update(mine)
            seen.update(mine)
    new = sorted(granted)  # one order of row locks for every process (PostgreSQL)
    for start in range(0, len(new), _PAIRS):
        chunk = new[start : start + _PAIRS]
        marks = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
        params = tuple(v for pair in chunk for v in (*pair, granted[pair], now))
        yield Sql(f"{_INSERT_OWNERS}{marks} ON CONFLICT DO NOTHING", params, count=True)
    stored.update((yield from _owners(new)))
    answers: list[dict[int, str]] = []
    for (wedding, clients, owner), ok in zip(asks, accepted, strict=True):
        told = _told(wedding, clients, owner, stored)
        if ok and all(found == owner for found in told.values()):
            told |= {c: stored[wedding, c] for c in clients if (wedding, c) in stored}
        answers.append(told)
    return answers


def _told(wedding: str, clients: list[int], owner: str, owners: dict[_Pair, str]) -> dict[int, str]:
    """What one ask is told before it claims anything: the owners of its ids that have
    one, in order, up to the first that is not ``owner`` (then it claims none)."""
    told: dict[int, str] = {}
    for client in clients:
        found = owners.get((wedding, client))
        if found is not None:
            told[client] = found
            if found != owner:
                break
    return told


def _owners(pairs: list[_Pair]) -> Tx[dict[_Pair, str]]:
    """The owners of ``pairs`` that have one: a statement per :data:`_PAIRS` of them."""
    owners: dict[_Pair, str] = {}
    for start in range(0, len(pairs), _PAIRS):
        weddings: dict[str, list[int]] = {}
        for wedding, client in pairs[start : start + _PAIRS]:
            weddings.setdefault(wedding, []).append(client)
        where = " OR ".join(
            f"(wedding = ? AND client_id IN ({', '.join('?' * len(clients))}))"
            for clients in weddings.values()
        )
        params = tuple(v for w, clients in weddings.items() for v in (w, *clients))
        rows = yield Sql(_ASK_OWNERS + where, params)
        owners.update(((str(w), int(c)), str(sub)) for w, c, sub in rows)
    return owners


class _Batches:
    """The claims of ids new to this process, decided in the store in batches: those asked
    while a batch is in its transaction share the next one (leader/follower, no timer).

    Each writer's first update under a new id waits for its claim, and many come at once
    (every client of a server that just started, or a step of new writers): one gateway
    transaction each took a place each in the store's shared transactions
    (:data:`storage._group_commit.MAX_SHARED_UPDATES`) behind the rooms' commits, so 10,000
    new writers made 200 shared transactions' worth of claims in the one write queue
    (:file:`docs/performance/2026-11-29.md`)."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._asks: list[_Ask] = []
        self._done: asyncio.Future[list[dict[int, str]]] | None = None
        """The answers of the batch being gathered (``None``: none is)."""
        self._running: asyncio.Task[None] | None = None

    async def claim(self, wedding: str, clients: list[int], owner: str) -> dict[int, str]:
        """What :func:`_claims` decides for this ask, in the next batch."""
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
        done, index = self._done, len(self._asks)
        self._asks.append((wedding, clients, owner))
        if self._running is None:
            self._running = asyncio.create_task(self._run(), name="client id claims")
        return (await asyncio.shield(done))[index]

    async def _run(self) -> None:
        try:
            while self._done is not None:
                asks, done = self._asks, self._done
                self._asks, self._done = [], None
                try:
                    done.set_result(await self._gateway.run(_claims(asks, clock.now())))
                except Exception as exc:  # every ask of the batch fails with it
                    _fail(done, exc)
                except asyncio.CancelledError:  # the server stops: nobody waits forever
                    for waiting in (done, self._done):
                        if waiting is not None:
                            _fail(waiting, StoreError("the client ids' claims stopped"))
                    self._asks, self._done = [], None
                    raise
        finally:
            self._running = None


def _fail(done: asyncio.Future[list[dict[int, str]]], exc: Exception) -> None:
    done.set_exception(exc)
    done.exception()  # retrieved: an ask whose caller has left is not logged as lost


class ClientIds:
    """The owners of the client ids, as this process knows them (see the module
    docstring). Without a store that has SQL tables it keeps them in memory only."""

    def __init__(self, store: DocumentStore | None = None, metrics: Metrics | None = None) -> None:
        self._store = store
        self._metrics = metrics
        self._known: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._gateway: Gateway | None = None
        self._batches: _Batches | None = None
        self.adoptions = Adoptions(None)
        """The adoption windows (:mod:`crdt_server.core.adoption`)."""

    async def start(self) -> None:
        """Install the table (filled from the update log when it is made:
        :data:`FROM_THE_LOG`)."""
        if self._store is None:
            return
        try:
            self._gateway = Gateway.of(self._store)
        except StoreError:
            return  # a store without SQL tables: owners live in memory
        await self._store.install(CLIENT_OWNERS_SCHEMA)
        await self._store.install(ADOPTIONS_SCHEMA)
        self.adoptions = Adoptions(self._gateway)
        self._batches = _Batches(self._gateway)

    async def own(
        self, wedding: str, summary: UpdateSummary, replica: Replica, owner: str, update: bytes
    ) -> tuple[int, ...]:
        """The client ids under which ``update`` writes new items (past what ``replica``
        holds), each ``owner``'s once claimed (:func:`owner_of` its sender, or
        :data:`SERVER`): raises :class:`ClientIdTaken` for the first that another owns.

        Items at clocks ``replica`` already holds claim nothing, but they must be what it
        holds there (:func:`differing`) unless ``owner`` owns their id: else they are
        another writer's items at a squatted (client, clock), refused the same, never
        answered as a no-op (see the module docstring)."""
        state = replica.state()
        new = [c for c, (_, end) in summary.structs.items() if end > state.get(c, 0)]
        if new and any(self.known(wedding, c) != owner for c in new):
            window = await self.adoptions.window(wedding)
            if window is None:
                owners = await self.claim(wedding, new, owner)
                for client in new:
                    if owners.get(client, owner) != owner:
                        self._taken(client)
            else:  # claims nothing the restore left unowned (crdt_server.core.adoption)
                found = {c: await self.owner(wedding, c) for c in new}
                others = {c: o for c, o in found.items() if o is not None and o != owner}
                if others:
                    if self._metrics is not None:
                        self._metrics.updates_rejected.labels("client_id_taken").inc()
                    raise Relayed(others, window)
                new = [c for c in new if found[c] == owner]
        known = {
            c: (first, min(end, state.get(c, 0)))
            for c, (first, end) in summary.structs.items()
            if first < state.get(c, 0)
            and end <= state.get(c, 0)
            and self.known(wedding, c) != owner
        }
        if known:
            for client in differing(update, known, replica):
                if await self.owner(wedding, client) != owner:
                    self._taken(client)
        return tuple(new)

    def _taken(self, client: int) -> NoReturn:
        if self._metrics is not None:
            self._metrics.updates_rejected.labels("client_id_taken").inc()
        raise ClientIdTaken(client)

    async def owner(self, wedding: str, client: int) -> str | None:
        """Who owns ``client`` in ``wedding``, claiming nothing (``None``: nobody yet)."""
        found = self.known(wedding, client)
        if found is not None or self._gateway is None:
            return found
        rows = await self._gateway.fetch(
            "SELECT sub FROM {t}yjs_client_owners WHERE wedding = ? AND client_id = ?",
            wedding,
            client,
        )
        if not rows:
            return None
        self._remember(wedding, client, str(rows[0][0]))
        return str(rows[0][0])

    def known(self, wedding: str, client: int) -> str | None:
        """The owner of ``client`` in ``wedding`` if this process knows it."""
        key = (wedding, client)
        owner = self._known.get(key)
        if owner is not None:
            self._known.move_to_end(key)
        return owner

    async def claim(self, wedding: str, clients: Iterable[int], owner: str) -> dict[int, str]:
        """The owners of ``clients``: those this process knows, and for the others what
        the store says once each is claimed for ``owner`` if nobody had it. If one is
        another's, none is claimed (those not read yet are left out of the answer)."""
        owners: dict[int, str] = {}
        unknown: list[int] = []
        for client in clients:
            found = self.known(wedding, client)
            if found is None:
                unknown.append(client)
            else:
                owners[client] = found
        if not unknown or any(found != owner for found in owners.values()):
            return owners
        if self._batches is None:
            claimed = dict.fromkeys(unknown, owner)
        else:
            claimed = await self._batches.claim(wedding, unknown, owner)
        for client, who in claimed.items():
            self._remember(wedding, client, who)
        owners.update(claimed)
        return owners

    def _remember(self, wedding: str, client: int, owner: str) -> None:
        self._known[(wedding, client)] = owner
        self._known.move_to_end((wedding, client))
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)


_DELETED = object()
"""What a clock holds once its content is deleted: nothing left to compare."""


def differing(update: bytes, spans: Mapping[int, tuple[int, int]], replica: Replica) -> list[int]:
    """The clients of ``spans`` (client: the clocks ``[first, end)`` of ``update``'s items
    that ``replica`` already holds) under which ``update`` holds other content than
    ``replica`` at the same (client, clock): not the same item.

    An item is compared with what ``replica`` holds as Yjs makes it: its content, origin,
    right origin, parent and key, clock by clock (a run of text or values may be split
    differently on each side: a split's right part has its left neighbour as origin).
    Content the update itself has deleted (deleted content, GC, or in its delete set) is
    never other content: nothing of it could be lost. Content ``replica`` holds deleted
    (collected: only its length is left) cannot be compared and counts as the same: a
    writer's retry of an update whose value was overwritten since is a no-op, as before
    (so a squat is told only while the squatter's content is there). The cost is one
    encoding of what ``replica`` holds of those clients from the first compared clock, and
    a walk of both sides' items: bounded by the update and that content, and spent only on writes of
    clocks a replica holds under an id their sender is not known to own (a relay, a
    retry, a squat), never on a new edit."""
    state = dict(replica.state())
    for client, (first, _) in spans.items():
        state[client] = first
    vector = bytearray(write_var_uint(len(state)))
    for client, at in state.items():
        vector += write_var_uint(client) + write_var_uint(at)
    stored = read_items(replica.doc.get_update(bytes(vector)))
    held = _runs(stored.items, stored.gcs)
    decoded = read_items(update)
    sent = _runs(decoded.items, decoded.gcs)
    found: list[int] = []
    for client, (first, end) in spans.items():
        deletes = decoded.deletes.get(client, [])
        if _differ(client, sent.get(client, []), held.get(client, []), first, end, deletes):
            found.append(client)
    return found


_Run = tuple[int, int, Item | None]
"""One item's clocks ``[start, end)`` and the item (``None``: deleted content, GC)."""


def _runs(items: list[Item], gcs: list[tuple[tuple[int, int], int]]) -> dict[int, list[_Run]]:
    runs: dict[int, list[_Run]] = {}
    for item in items:
        client, start = item.id
        kept = None if item.content.ref == 1 else item
        runs.setdefault(client, []).append((start, start + item.length, kept))
    for (client, start), length in gcs:
        runs.setdefault(client, []).append((start, start + length, None))
    for found in runs.values():
        found.sort(key=lambda run: run[0])
    return runs


def _at(client: int, run: _Run, start: int, end: int) -> object:
    """What a run holds at clocks ``[start, end)`` (inside it), as comparable values."""
    first, _, item = run
    if item is None:
        return _DELETED
    head = start == first
    origin = item.origin if head else (client, start - 1)
    where = (origin, item.right_origin, item.parent if head else None, item.key if head else None)
    content = item.content
    if content.ref == 4:
        units = str(content.value).encode("utf-16-le")
        return (4, where, units[2 * (start - first) : 2 * (end - first)])
    if content.ref == 8:
        return (8, where, list(content.value)[start - first : end - first])
    return (content.ref, where, content.value)


def _differ(
    client: int,
    sent: list[_Run],
    held: list[_Run],
    first: int,
    end: int,
    deletes: list[tuple[int, int]],
) -> bool:
    cuts = {first, end}
    for run in (*sent, *held):
        cuts.update(c for c in run[:2] if first < c < end)
    edges = sorted(cuts)
    sent_starts = [run[0] for run in sent]
    held_starts = [run[0] for run in held]
    for start, stop in zip(edges, edges[1:], strict=False):
        mine = _covering(sent, sent_starts, start)
        theirs = _covering(held, held_starts, start)
        if mine is None or theirs is None:
            continue  # a gap (a Skip) on one side: nothing of it to compare here
        ours, kept = _at(client, mine, start, stop), _at(client, theirs, start, stop)
        if ours is _DELETED or kept is _DELETED or ours == kept:
            continue
        if not _covered(deletes, start, stop):
            return True
    return False


def _covering(runs: list[_Run], starts: list[int], clock: int) -> _Run | None:
    at = bisect_right(starts, clock) - 1
    if at >= 0 and runs[at][0] <= clock < runs[at][1]:
        return runs[at]
    return None


def _covered(deletes: list[tuple[int, int]], start: int, stop: int) -> bool:
    """True if the delete ranges ``(clock, length)`` (sorted) cover ``[start, stop)``."""
    reach = start
    for clock_, length in deletes:
        if clock_ > reach:
            break
        reach = max(reach, clock_ + length)
        if reach >= stop:
            return True
    return reach >= stop
