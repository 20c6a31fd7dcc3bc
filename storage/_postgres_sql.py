"""What the PostgreSQL store runs on the writer's connection besides appends: feature rows
of a commit, documents moved in whole, gateway transactions, and how long each side waits
on the other. See :mod:`storage.postgres`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from ._postgres_schema import (
    APPEND,
    NEXT_SEQS,
    PUT_HISTORY,
)
from .base import FeatureRow, MovedDocument, StoreError, StoreUnavailable, dropped_feature_row
from .gateway import Sql, Tx, dialect_sql, dialected, insert_sql

if TYPE_CHECKING:
    from ._postgres_schema import Conn
    from .postgres import PostgresStore

# asyncio.TimeoutError is an OSError; a malformed DSN raises ValueError (only at open).
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)

_T = TypeVar("_T")


async def insert_features(conn: Conn, s: str, features: Sequence[FeatureRow]) -> None:
    """Insert a commit's feature rows; a row that fails is dropped (rolled back to its
    own savepoint, logged with its table only) and the updates commit all the same
    (see :func:`crdt_server.storage.base.dropped_feature_row`)."""
    if not features:
        return

    async def insert(feature: FeatureRow) -> None:
        sql = dialect_sql(insert_sql(feature), "postgres", f"{s}.")
        await conn.execute(sql, *(value for _, value in feature.values))

    try:
        async with conn.transaction():  # a savepoint
            for feature in features:
                await insert(feature)
    except asyncpg.PostgresError:
        for feature in features:  # again, one by one: keep every row that goes in
            try:
                async with conn.transaction():
                    await insert(feature)
            except asyncpg.PostgresError as exc:
                dropped_feature_row(feature, exc)


class MovedRows:
    """The history and updates of :meth:`storage.base.Store.put_documents` (checked
    already) as the arrays :meth:`write` sends."""

    def __init__(self, documents: Sequence[MovedDocument], origin: str) -> None:
        history: list[tuple[str, str, float, int]] = []  # doc, origin, created_at, size
        logged: list[tuple[str, bytes]] = []
        for document in documents:
            for entry in document.history:
                history.append((document.doc, entry.origin, float(entry.created_at), entry.size))
            # Placeholders keep each document's rows after its own history, in one list.
            history += [(document.doc, "", -1.0, -1)] * len(document.updates)
            logged += [(document.doc, data) for data in document.updates]
        self.origin = origin
        self.history = history
        self.logged = logged

    def write(self, s: str) -> Tx[list[int]]:
        """The statements, in the quoted schema ``s``; the updates' seqs."""
        history, logged = self.history, self.logged
        [(drawn,)] = yield Sql(NEXT_SEQS, (f"{s}.updates_seq", len(history)))
        seqs: list[int] = sorted(drawn)
        update_seqs = [q for q, h in zip(seqs, history, strict=True) if h[3] < 0]
        plain = [(q, h) for q, h in zip(seqs, history, strict=True) if h[3] >= 0]
        columns = ([q for q, _ in plain], *([h[i] for _, h in plain] for i in range(4)))
        yield Sql(PUT_HISTORY.format(s=s), columns, count=True)
        n = len(logged)
        docs, data = [doc for doc, _ in logged], [data for _, data in logged]
        updates = (update_seqs, docs, data, [self.origin] * n, [""] * n, [""] * n, [None] * n)
        yield Sql(APPEND.format(s=s), updates, count=True)
        return update_seqs


class RolledBack(Exception):  # noqa: N818 (not an error: the owner rolled back)
    """A held transaction's owner raised: roll it back."""


async def run_steps(conn: Conn, steps: Sequence[Tx[Any]], store: PostgresStore) -> None:
    """Run features' gateway steps (``?``/``{t}`` SQL) in the caller's transaction, in
    order; a database error one does not catch fails the transaction."""
    prefix = f"{store.schema}."
    for step in steps:
        await driver(dialected(step, lambda t: dialect_sql(t, "postgres", prefix)), store)(conn)


def driver(tx: Tx[_T], store: PostgresStore) -> Callable[[Conn], Awaitable[_T]]:
    """The work of a gateway transaction (its statements in PostgreSQL's dialect already)
    on the writer's connection: each statement's rows (or count) sent back into ``tx``, a
    database error thrown into it as :class:`StoreError`."""

    async def body(conn: Conn) -> _T:
        reply: Any = None
        error: StoreError | None = None
        while True:
            try:
                step = tx.send(reply) if error is None else tx.throw(error)
            except StopIteration as done:
                result: _T = done.value
                return result
            error = None
            try:
                if step.count:
                    status = str(await conn.execute(step.text, *step.params))
                    last = status.rsplit(" ", 1)[-1]
                    reply = int(last) if last.isdigit() else 0
                else:
                    reply = [tuple(r) for r in await conn.fetch(step.text, *step.params)]
            except DB_ERRORS as exc:
                error = store_error(f"writing {store.where} failed: {exc}", exc)
                error.__cause__ = exc

    return body


class Bounds:
    """How long this server waits on the database, and how long the database waits on it.

    ``answer`` bounds every use of a pooled connection on this side (a connection, a read, a
    whole write transaction with its wait for the write lock): a connection that has not
    answered by then is dropped (:meth:`asyncpg.Connection.terminate`, no round trip), so
    whatever waits on it fails at once with :class:`StoreError` instead of waiting for TCP
    to give up (minutes; hours with Linux's keepalive defaults). ``idle`` bounds, on the
    database's side, a transaction of this server that holds the write lock every process
    shares and sends nothing (its host cut off mid-commit): PostgreSQL ends that session
    (``idle_in_transaction_session_timeout``) and the lock is free again. The database also
    probes an idle connection (keepalives) and drops one whose peer stops acknowledging
    (``tcp_user_timeout``); ``statement`` cancels a statement that runs longer.
    """

    def __init__(self, *, answer: float, idle: float, statement: float, lock: float) -> None:
        if min(answer, idle, statement, lock) <= 0:
            raise ValueError("every PostgreSQL timeout must be positive")
        self.answer = answer
        self.idle = idle
        self.statement = statement
        self.lock = lock

    def server_settings(self) -> dict[str, str]:
        """What each pooled session sets on the database's side."""
        return {
            "lock_timeout": f"{_ms(self.lock)}ms",
            "idle_in_transaction_session_timeout": f"{_ms(self.idle)}ms",
            "statement_timeout": f"{_ms(self.statement)}ms",
            # A peer that vanished is found in seconds, not after Linux's two hours.
            "tcp_keepalives_idle": str(max(1, round(self.answer))),
            "tcp_keepalives_interval": "1",
            "tcp_keepalives_count": "3",
            "tcp_user_timeout": str(_ms(self.answer)),
        }

    @asynccontextmanager
    async def connection(
        self, pool: asyncpg.Pool[asyncpg.Record], what: str
    ) -> AsyncIterator[Conn]:
        """A pooled connection for at most ``answer`` seconds, dropped past that; ``what``
        (``"reading PostgreSQL schema 'x'"``) starts the :class:`StoreError`."""
        try:
            conn = await pool.acquire(timeout=self.answer)
        except TimeoutError as exc:
            raise StoreUnavailable(
                f"{what} failed: no connection within {self.answer:g} s"
            ) from exc
        except DB_ERRORS as exc:
            raise store_error(f"{what} failed: {exc}", exc) from exc
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            # Every await on it fails now; the pool opens another. One being released
            # already is the release's to end (its own timeout terminates it).
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()

        timer = asyncio.get_running_loop().call_later(self.answer, expire)
        try:
            yield conn
        except asyncio.CancelledError:
            # asyncpg would wait for the server to confirm a cancelled query before handing
            # the connection back: a database cut off never confirms.
            conn.terminate()
            raise
        except (StoreError, *DB_ERRORS) as exc:  # a step may have made it a StoreError
            if expired:
                raise StoreUnavailable(
                    f"{what} failed: no answer from the database within {self.answer:g} s"
                    " (connection dropped)"
                ) from exc
            cause = exc.__cause__ if isinstance(exc, StoreError) else None
            if isinstance(cause, BaseException) and isinstance(
                store_error("", cause), StoreUnavailable
            ):
                raise StoreUnavailable(str(exc)) from cause
            raise
        finally:
            try:
                # Under the timer too: a release rolls back an open transaction first.
                with contextlib.suppress(*DB_ERRORS):  # it then drops the connection
                    await pool.release(conn)
            finally:
                timer.cancel()


_LINK_ERRORS = (
    OSError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.LockNotAvailableError,  # lock_timeout: another host held the lock
    asyncpg.exceptions.QueryCanceledError,  # statement_timeout
)


def store_error(message: str, exc: BaseException) -> StoreError:
    """:class:`StoreUnavailable` for a failure of the link to the database (a connection
    refused, dropped or ended by the server) or a lock or statement that timed out, else
    :class:`StoreError`."""
    closed = isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc)
    # A connection left mid-operation by a link that failed under it ("cannot switch to
    # state 12; another operation (2) is in progress"): the link's failure, not the data's.
    broken = isinstance(exc, asyncpg.InternalClientError)
    if closed or broken or isinstance(exc, _LINK_ERRORS):
        return StoreUnavailable(message)
    return StoreError(message)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
