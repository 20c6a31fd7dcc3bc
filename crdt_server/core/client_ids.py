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

The first claim of an id is decided in the store, by one insert-if-absent and a read of
the row in the same transaction, before the update that makes it is applied: two
processes or hosts that see one new id at once cannot both be granted it. It is its own
small transaction (one per new id per wedding, not per update), so a refused claim never
fails the shared commit of other rooms' updates. This process then knows the owner for as
long as it keeps the entry (:data:`MAX_KNOWN` entries).

The ``yjs_client_owners`` table is the core's (installed at start with the quarantine,
erased with its wedding). A store of the release before is filled once, when the table is
made, from the update log's senders: each single-client update's sender owns its id,
the first one by seq; an id of the server's own edits (an origin ``server...``) is the
server's. Ids that no single-client update carried have no recorded sender: the first
writer after the upgrade owns them (CHANGELOG).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from crdt_server import clock
from crdt_server.codec.updates import UpdateSummary
from crdt_server.core.metrics import Metrics
from crdt_server.core.payloads import Sender
from crdt_server.errors import ClientIdTaken
from crdt_server.storage import DocumentStore, Migration, StoreError
from crdt_server.storage.gateway import Gateway, Sql, Table, Tx, schema_of

__all__ = ["CLIENT_OWNERS_SCHEMA", "FROM_THE_LOG", "MAX_KNOWN", "SERVER", "ClientIds", "owner_of"]

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


def owner_of(sender: Sender) -> str:
    """Who owns what ``sender`` writes under a new id: the server for its own edits (an
    origin ``server...``: the projections, the conflicts keeper), else the person."""
    return SERVER if sender.origin.startswith("server") else sender.actor.sub


def _claim(wedding: str, clients: list[int], owner: str, now: float) -> Tx[dict[int, str]]:
    owners: dict[int, str] = {}
    for client in clients:
        yield Sql(
            "INSERT INTO {t}yjs_client_owners (wedding, client_id, sub, at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (wedding, client, owner, now),
        )
        rows = yield Sql(
            "SELECT sub FROM {t}yjs_client_owners WHERE wedding = ? AND client_id = ?",
            (wedding, client),
        )
        owners[client] = str(rows[0][0]) if rows else owner
    return owners


class ClientIds:
    """The owners of the client ids, as this process knows them (see the module
    docstring). Without a store that has SQL tables it keeps them in memory only."""

    def __init__(self, store: DocumentStore | None = None, metrics: Metrics | None = None) -> None:
        self._store = store
        self._metrics = metrics
        self._known: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._gateway: Gateway | None = None

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

    async def own(
        self, wedding: str, summary: UpdateSummary, state: Mapping[int, int], owner: str
    ) -> tuple[int, ...]:
        """The client ids under which the update writes new items (past ``state``, the
        document's state vector), each ``owner``'s once claimed (:func:`owner_of` its
        sender, or :data:`SERVER`): raises :class:`ClientIdTaken` for the first that
        another owns. Content the document already holds claims nothing (see the module
        docstring)."""
        new = [c for c, (_, end) in summary.structs.items() if end > state.get(c, 0)]
        if not new:
            return ()
        owners = await self.claim(wedding, new, owner)
        for client in new:
            if owners[client] != owner:
                if self._metrics is not None:
                    self._metrics.updates_rejected.labels("client_id_taken").inc()
                raise ClientIdTaken(client)
        return tuple(new)

    def known(self, wedding: str, client: int) -> str | None:
        """The owner of ``client`` in ``wedding`` if this process knows it."""
        key = (wedding, client)
        owner = self._known.get(key)
        if owner is not None:
            self._known.move_to_end(key)
        return owner

    async def claim(self, wedding: str, clients: Iterable[int], owner: str) -> dict[int, str]:
        """The owners of ``clients``: those this process knows, and for the others what
        the store says once each is claimed for ``owner`` if nobody had it."""
        owners: dict[int, str] = {}
        unknown: list[int] = []
        for client in clients:
            found = self.known(wedding, client)
            if found is None:
                unknown.append(client)
            else:
                owners[client] = found
        if not unknown:
            return owners
        if self._gateway is None:
            claimed = dict.fromkeys(unknown, owner)
        else:
            claimed = await self._gateway.run(_claim(wedding, unknown, owner, clock.now()))
        for client, who in claimed.items():
            self._remember(wedding, client, who)
        owners.update(claimed)
        return owners

    def _remember(self, wedding: str, client: int, owner: str) -> None:
        self._known[(wedding, client)] = owner
        self._known.move_to_end((wedding, client))
        while len(self._known) > MAX_KNOWN:
            self._known.popitem(last=False)
