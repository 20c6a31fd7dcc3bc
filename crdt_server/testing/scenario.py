"""Scripts of several clients editing, going offline and coming back, played on any client.

A script is a list of steps (what :func:`crdt_server.testing.strategies.interleavings`
draws). :func:`play` runs one against clients of either mode, the in-process
:class:`~crdt_server.testing.InProcessClient` or the socket
:class:`~crdt_server.testing.YClient`: both have the :class:`SyncClient` interface. After
the script every client comes back online and :func:`settle` waits until all of them hold
what the server holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from pycrdt import Doc

from crdt_server.documents import OPERATIONS, OperationError, apply_operation

from .assertions import assert_converged
from .edits import Edit, apply_edit

__all__ = [
    "Apply",
    "Flush",
    "GoOffline",
    "Operate",
    "Reconnect",
    "Step",
    "SyncClient",
    "apply_step_operation",
    "play",
    "settle",
]


class SyncClient(Protocol):
    """What both client modes offer; tests written against it run in either."""

    @property
    def doc(self) -> Doc[Any]: ...

    @property
    def online(self) -> bool: ...

    async def flush(self) -> None: ...

    async def go_offline(self) -> None: ...

    async def reconnect(self, timeout: float = 10.0) -> None: ...

    def is_confirmed(self) -> bool: ...

    async def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Operate:
    """Client ``client`` edits its document: a wedding operation (a dict such as
    ``{"op": "set_rsvp", ...}``) or a transaction of generic :class:`Edit` values."""

    client: int
    operation: Mapping[str, Any] | tuple[Edit, ...]


@dataclass(frozen=True)
class Flush:
    """Client ``client`` sends its unsent edits (if online)."""

    client: int


@dataclass(frozen=True)
class GoOffline:
    """Client ``client`` loses its connection (if online); its document stays."""

    client: int


@dataclass(frozen=True)
class Reconnect:
    """Client ``client`` comes back (if offline) and resyncs."""

    client: int


Step: TypeAlias = Operate | Flush | GoOffline | Reconnect
Apply: TypeAlias = Callable[[Doc[Any], Any], object]
"""How a step's operation changes a client's document: the app's own code under test."""


def apply_step_operation(doc: Doc[Any], operation: Mapping[str, Any] | Sequence[Edit]) -> None:
    """The default :data:`Apply`: a wedding operation through :func:`documents.apply_operation`
    (a refused one changes nothing and is skipped), or generic edits in one transaction."""
    if isinstance(operation, Mapping):
        try:
            apply_operation(doc, OPERATIONS[operation["op"]], operation)
        except OperationError:
            pass  # refused: nothing changed, as an app shows an error and moves on
        return
    with doc.transaction():
        for edit in operation:
            apply_edit(doc, edit)


async def play(
    script: Sequence[Step],
    clients: Sequence[SyncClient],
    apply: Apply = apply_step_operation,
    *,
    timeout: float = 10.0,
) -> None:
    """Run ``script`` on ``clients`` (indices wrap), then bring everyone online and
    :func:`settle`. ``apply(doc, operation)`` makes each edit."""
    for step in script:
        client = clients[step.client % len(clients)]
        if isinstance(step, Operate):
            apply(client.doc, step.operation)
        elif isinstance(step, Flush):
            if client.online:
                await client.flush()
        elif isinstance(step, GoOffline):
            if client.online:
                await client.go_offline()
        elif not client.online:
            await client.reconnect(timeout)
    for client in clients:
        if not client.online:
            await client.reconnect(timeout)
    await settle(*clients, timeout=timeout)


def _same(clients: Sequence[SyncClient]) -> bool:
    """Same state and same JSON (deletions leave the state vector as it was).

    First the cheap sufficient test: the same state vector and the same delete set (the
    update of a document from its own state holds only its deletions) mean the same
    integrated structs and deletions, so the same content. Encodings that differ only in
    order fall through to comparing the JSON views."""
    docs = [client.doc for client in clients]
    state = docs[0].get_state()
    if all(doc.get_state() == state for doc in docs[1:]):
        deletions = docs[0].get_update(state)
        if all(doc.get_update(state) == deletions for doc in docs[1:]):
            return True
    try:
        assert_converged(*clients)
    except AssertionError:
        return False
    return True


async def settle(*clients: SyncClient, timeout: float = 10.0) -> None:
    """Send every client's unsent edits and wait (deadline ``timeout``) until the server
    confirmed them all and every client holds the same state."""
    deadline = time.monotonic() + timeout
    for client in clients:
        await client.flush()
    for client in clients:
        if not client.is_confirmed():
            await client.wait(client.is_confirmed, max(0.0, deadline - time.monotonic()))
    if _same(clients):  # the usual case by now: no need to ask each client again
        return
    for client in clients:
        await client.wait(lambda: _same(clients), max(0.0, deadline - time.monotonic()))
