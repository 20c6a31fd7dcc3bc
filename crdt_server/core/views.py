"""What an extension sees of the core: narrow views of rooms, connections and the registry.

The hooks (:mod:`crdt_server.core.hooks`) are typed with these protocols, not with the
concrete :class:`~crdt_server.core.room.Room`, ``Connection`` or ``RoomRegistry``: an
extension reads only what is listed here, and the core passes its own objects, which
satisfy them. So the hooks module imports nothing of the rooms (no import circle), and a
change inside a room changes no feature.

- :class:`RoomView`: what a hook is given (``on_load``, ``on_stored``, ``on_connect``...);
- :class:`ConnectionView`: a connection that joined or left (``on_connect``,
  ``on_disconnect``);
- :class:`LiveRoom`: a room an extension holds itself (from :attr:`RoomsView.rooms` or
  :meth:`WeddingsView.room`), which it may also write to;
- :class:`RoomsView` and :class:`WeddingsView`: the registry and the documents service, as
  :class:`~crdt_server.core.hooks.Core` gives them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

from pycrdt import Doc

from crdt_server.auth.principals import Principal
from crdt_server.cluster.bus import Bus
from crdt_server.codec.updates import UpdateSummary
from crdt_server.core.metrics import Metrics
from crdt_server.core.payloads import Sender
from crdt_server.storage import FeatureRow

__all__ = ["ConnectionView", "LiveRoom", "RoomView", "RoomsView", "WeddingsView"]

_T = TypeVar("_T")


class ConnectionView(Protocol):
    """A client connection, as an extension sees it."""

    @property
    def id(self) -> str:
        """``c<serial>``: the origin of the updates it sends (:attr:`Sender.origin`)."""

    @property
    def principal(self) -> Principal:
        """Who it is authenticated as."""

    @property
    def last_activity(self) -> float:
        """When the peer last sent a frame (Unix time)."""

    @property
    def connected_at(self) -> float:
        """When the connection was accepted (Unix time)."""

    def request_close(self, code: int, reason: str = "") -> None:
        """Close it with ``code`` (a 44xx close for a credential that ended)."""

    def tell(self, payload: str) -> bool:
        """Send the server's own stateless message (JSON text) if the peer speaks them (a
        Hocuspocus provider's document, ``/collab``); ``False`` if it does not."""


class RoomView(Protocol):
    """One loaded document, as a hook is given it."""

    @property
    def name(self) -> str:
        """``{wedding_id}/{kind}``."""

    @property
    def wedding_id(self) -> str: ...

    @property
    def kind(self) -> str:
        """The document's kind (``guests``...), or what follows the wedding id."""

    @property
    def doc(self) -> Doc[Any]:
        """The document as integrated so far: read it, never change it."""

    @property
    def last_seq(self) -> int:
        """The newest store seq the room has integrated (0: nothing stored yet)."""

    @property
    def connections(self) -> Collection[ConnectionView]:
        """The connections in the room now."""

    def wait_committed(self, index: int | None = None) -> asyncio.Future[None]:
        """Done once every update up to ``index`` (default: all applied so far) is
        committed; fails if the store failed."""


class LiveRoom(RoomView, Protocol):
    """A room an extension holds (acquired through the registry or the documents service),
    which it may write to."""

    async def apply(
        self,
        update: bytes,
        summary: UpdateSummary,
        sender: Sender,
        *,
        rows: Sequence[FeatureRow] = (),
    ) -> int | None:
        """Apply an update as ``sender``; its index (for :meth:`wait_committed`), or
        ``None`` if it changed nothing."""

    async def catch_up(self) -> None:
        """Integrate everything the store has (another process may have committed more)."""


class RoomsView(Protocol):
    """The rooms of this process (the registry), as an extension sees them."""

    @property
    def bus(self) -> Bus:
        """The bus to the other processes (:class:`~crdt_server.cluster.bus.LocalBus`
        when there are none)."""

    @property
    def rooms(self) -> Mapping[str, LiveRoom]:
        """Loaded rooms by name (read only)."""

    def wedding_rooms(self, wedding_id: str) -> Collection[LiveRoom]:
        """The wedding's loaded rooms (read only), found without looking at the others'."""

    @property
    def metrics(self) -> Metrics: ...


class WeddingsView(Protocol):
    """The wedding documents service, as an extension sees it."""

    @property
    def client_id(self) -> int:
        """The Yjs client id of the server's own edits."""

    def room(self, name: str) -> AbstractAsyncContextManager[LiveRoom]:
        """The room ``name``, loaded (once) while the context lasts."""

    async def documents(
        self, wedding_id: str, kinds: Iterable[str] | None = None
    ) -> dict[str, Doc[Any]]:
        """The wedding's documents of ``kinds`` as they are now (read them, never change
        them)."""

    async def edit(
        self,
        name: str,
        change: Callable[[Doc[Any]], _T],
        sender: Sender,
        *,
        rows: Callable[[_T], Sequence[FeatureRow]] | None = None,
        copy: bool = False,
    ) -> _T:
        """Make a server-side change to a room's document as ``sender`` (on the room's own
        document, what it writes then taken in like a client's update; ``copy``: on a
        private copy, for a change that cannot check before its first write); returns
        once it is committed."""

    async def edit_off_loop(
        self, name: str, change: Callable[[Doc[Any]], _T], sender: Sender
    ) -> _T:
        """A large server-side change as ``sender``, made on a private copy on a worker
        thread and taken in by slices, each committed before the next (the event loop
        serves everyone else meanwhile); returns once all of it is committed. A change that
        raises writes nothing; a crash between two slices leaves those before it."""
