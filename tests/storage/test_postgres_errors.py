"""Which PostgreSQL failures are the link's (``StoreUnavailable``: the readiness check
clears them once the database answers again) and which are the data's (``StoreError``:
only a commit that succeeds clears them). A server whose ``/readyz`` says 503 gets no
clients through its proxy, so a link failure taken for a data failure kept it out for
good (the fault campaign: a server never back after a PostgreSQL restart)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from crdt_server.storage import StoreError, StoreUnavailable
from crdt_server.storage._postgres_sql import driver, store_error
from crdt_server.storage.gateway import Sql, Tx

pytestmark = pytest.mark.timeout(10)

LEFT_MID_OPERATION = "cannot switch to state 12; another operation (2) is in progress"


def test_a_connection_left_mid_operation_is_the_links_failure() -> None:
    found = store_error("writing x failed", asyncpg.InternalClientError(LEFT_MID_OPERATION))
    assert isinstance(found, StoreUnavailable)
    closed = asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"
    )
    assert isinstance(store_error("writing x failed", closed), StoreUnavailable)
    duplicate = store_error("writing x failed", asyncpg.UniqueViolationError("duplicate key"))
    assert isinstance(duplicate, StoreError) and not isinstance(duplicate, StoreUnavailable)


class _Broken:
    """A writer's connection whose link failed under it."""

    async def fetch(self, *args: Any) -> list[Any]:
        raise asyncpg.InternalClientError(LEFT_MID_OPERATION)

    async def execute(self, *args: Any) -> str:
        raise asyncpg.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )


class _Where:
    where = "PostgreSQL schema 'public'"


@pytest.mark.asyncio
async def test_a_statement_the_link_failed_is_thrown_into_the_transaction_as_unavailable() -> None:
    seen: list[BaseException] = []

    def tx() -> Tx[None]:
        for count in (False, True):
            try:
                yield Sql("SELECT 1", (), count=count)
            except StoreError as exc:
                seen.append(exc)

    await driver(tx(), _Where())(_Broken())  # type: ignore[arg-type]
    assert [type(e) for e in seen] == [StoreUnavailable, StoreUnavailable], seen
