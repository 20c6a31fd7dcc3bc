"""A room's members: its connections and their presence (awareness).

:class:`RoomMembers` is one of the two halves of a room: the
:class:`~crdt_server.core.room.Room` keeps the document and its commit path, and calls on
its members to greet a joiner, to send what it commits to everyone, and to close them all;
the members keep who is connected, what each client's presence is, and relay presence and
stateless messages here and to the other processes. The room hands its hooks itself (a
:class:`~crdt_server.core.views.RoomView`) for ``on_connect`` and ``on_disconnect``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping

from crdt_server.cluster.bus import Bus
from crdt_server.codec.awareness import (
    AwarenessEntry,
    decode_awareness,
    encode_awareness_entries,
)
from crdt_server.codec.protocol import encode_awareness
from crdt_server.core.connection import Connection, newest_serial
from crdt_server.core.hooks import Hooks
from crdt_server.core.presence import AwarenessRegistry, PresenceRelay
from crdt_server.core.views import RoomView
from crdt_server.errors import PeerError
from crdt_server.settings import Settings

__all__ = ["RoomMembers"]

log = logging.getLogger("crdt_server.core.room")


class RoomMembers:
    """The connections of one room and their presence; all methods run on the event loop."""

    def __init__(self, room: RoomView, bus: Bus, settings: Settings, hooks: Hooks) -> None:
        self._room = room
        self._bus = bus
        self._settings = settings
        self._hooks = hooks
        self.connections: set[Connection] = set()
        self.awareness = AwarenessRegistry()
        self._presence = PresenceRelay(self._send_presence, settings.presence_batch_seconds)

    # -- sending ------------------------------------------------------------------------

    def broadcast(self, frame: bytes, exclude: object = None) -> None:
        for conn in self.connections:
            if conn is not exclude:
                conn.send(frame)

    def relay_stateless(self, text: str | Mapping[str, str], exclude: object = None) -> int:
        """Send a stateless message (JSON text) to every connection that speaks them but
        ``exclude``: ``text``, or the text for the connection's reader (its role, with its
        field set if it has one: :attr:`Principal.reader`; none for a reader it does not
        name); the number of connections told."""
        told = 0
        for conn in self.connections:
            if conn is exclude or not conn.stateless:
                continue
            said = text if isinstance(text, str) else text.get(conn.principal.reader)
            if said is not None and conn.tell(said):
                told += 1
        return told

    def apply_stateless(self, conn: Connection, text: str) -> None:
        """A writer's stateless message, checked and stamped: to this room's other
        connections here and in the other processes (never stored)."""
        self.relay_stateless(text, exclude=conn)
        self._bus.publish_stateless(self._room.name, text)

    def send_to(self, origin: str, frame: bytes) -> None:
        """Send ``frame`` to the connection whose id is ``origin`` (if it is here)."""
        for conn in self.connections:
            if conn.id == origin:
                conn.send(frame)

    def flush(self) -> None:
        """Write now what each connection's transport holds back (see
        :meth:`Connection.flush`)."""
        for conn in self.connections:
            conn.flush()

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self.connections):
            conn.request_close(code, reason)

    def _send_presence(self, entries: Iterable[AwarenessEntry], exclude: object) -> None:
        self.broadcast(encode_awareness(encode_awareness_entries(entries)), exclude=exclude)

    # -- joining and leaving --------------------------------------------------------------

    def join(self, conn: Connection, greeting: bytes) -> None:
        """Add a connection and greet it: ``greeting`` (the room's sync step 1), then
        everyone's presence."""
        self.connections.add(conn)
        self._hooks.connect(self._room, conn)
        conn.send(greeting)
        states = self.awareness.states()
        if states:
            conn.send(encode_awareness(encode_awareness_entries(states)))

    def leave(self, conn: Connection) -> None:
        """Remove a connection and broadcast the removal of every presence it spoke for."""
        if conn in self.connections:
            self.connections.discard(conn)
            self._hooks.disconnect(self._room, conn)
        # Any connection made so far may still echo what it was told of ``conn``'s clients.
        removals = self.awareness.remove_owner(conn, newest=newest_serial())
        if removals:
            self._presence.relay(removals)
            self._bus.publish_awareness(self._room.name, encode_awareness_entries(removals))

    # -- presence -------------------------------------------------------------------------

    def apply_awareness(self, conn: Connection, entries: list[AwarenessEntry]) -> None:
        accepted = self.awareness.apply(conn, conn.principal.key, entries, serial=conn.serial)
        if accepted:
            self._presence.relay(accepted, exclude=conn)
            self._bus.publish_awareness(self._room.name, encode_awareness_entries(accepted))
            self._hooks.awareness(self._room, conn, accepted)

    def apply_remote_awareness(self, origin: str, payload: bytes) -> None:
        """Presence another process accepted (validated and stamped there)."""
        try:
            entries = decode_awareness(
                payload,
                max_state_bytes=self._settings.max_awareness_state_bytes,
                max_entries=self._settings.max_awareness_entries,
            )
        except PeerError as exc:
            log.error("room %s: bad presence from process %s: %s", self._room.name, origin, exc)
            return
        accepted = self.awareness.apply(("remote", origin), f"process:{origin}", entries)
        if accepted:
            self._presence.relay(accepted)

    def expire_presence(self, older_than: float, owned: Callable[[Hashable], bool]) -> None:
        """Forget the presence of the owners ``owned`` picks that was last heard before
        ``older_than`` (monotonic), relayed as removals like any other presence change."""
        removals = self.awareness.expire(older_than, owned)
        if removals:
            self._presence.relay(removals)

    def awareness_frame(self) -> bytes:
        return encode_awareness(encode_awareness_entries(self.awareness.states()))

    @property
    def presence_folding(self) -> bool:
        """Presence is folded, to be relayed when its window ends."""
        return self._presence.folding

    def close(self) -> None:
        """The room is unloaded: drop what presence is folded, and its timer."""
        self._presence.close()
