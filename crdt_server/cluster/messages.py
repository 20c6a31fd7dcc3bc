"""The bus's messages as typed Structs, and their codecs.

Admin and feature events travel on the bus as JSON objects whose ``type`` names the
message (see :meth:`~crdt_server.cluster.bus.Bus.publish_event`); a feature declares each
of its messages as a :class:`BusMessage` subclass with that ``type`` as its tag, sends it
with :func:`to_event` and reads it with :func:`from_event`. Committed updates and presence
travel as binary frames (:class:`UpdatesMessage`, :class:`AwarenessMessage`); stateless
messages as JSON on a channel of their own (:class:`StatelessMessage`); which rooms each
process has open and what it committed, as MessagePack on another (:class:`Interest`,
:class:`Commits`).

During a rolling restart processes of two releases share the bus (``deploy/README.md``),
so both directions must hold:

- **What a newer process sends, this one reads.** Decoding ignores an object field it does
  not know (msgspec's ``forbid_unknown_fields`` stays off) and, for ``array_like``
  Structs (a list of values, such as a presence entry), the extra trailing items a newer
  release may append; an updates frame ignores bytes after its last update.
- **What this process sends, the previous release reads.** A message is encoded exactly as
  the release before these Structs wrote it by hand (the same keys in the same order, every
  field present, lists of the same length): a new field may be *read* by this release, but
  is sent only by a release after it, once no process reads the old shape strictly.
  ``tests/fixtures/bus/previous_release.json`` holds those shapes.
- **What is new, the previous release never hears.** A message type the previous release
  did not know travels on a channel it does not subscribe to (:class:`StatelessMessage`):
  on ``crdt:events`` its admin extension would log every such event as an unknown one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from crdt_server.codec.protocol import (
    read_var_string,
    read_var_uint,
    write_var_string,
    write_var_uint,
)
from crdt_server.errors import ProtocolError

__all__ = [
    "ADMIN_MESSAGES",
    "AwarenessMessage",
    "BusMessage",
    "Commits",
    "Delete",
    "Interest",
    "Lift",
    "Revoke",
    "StatelessMessage",
    "UpdatesMessage",
    "from_event",
    "item_from_bus",
    "read_rooms_message",
    "to_event",
]

M = TypeVar("M", bound="BusMessage")
S = TypeVar("S", bound=msgspec.Struct)


class BusMessage(msgspec.Struct, frozen=True, tag_field="type", forbid_unknown_fields=False):
    """An event on the bus: a JSON object whose ``type`` is the subclass's tag. The bus adds
    the sender's ``origin`` (its process id), which a message reads only if it declares it."""


def to_event(message: BusMessage) -> dict[str, Any]:
    """``message`` as the object :meth:`Bus.publish_event` sends: ``type`` first, then the
    fields in their declared order, every one of them (none left out as a default)."""
    event = msgspec.to_builtins(message)
    assert isinstance(event, dict)
    return event


def from_event(event: dict[str, Any], kind: type[M]) -> M | None:
    """``event`` read as a ``kind`` (unknown fields ignored), or ``None`` if it is another
    message or is not a valid ``kind`` (a malformed message is dropped, never raised)."""
    if event.get("type") != kind.__struct_config__.tag:
        return None
    try:
        return msgspec.convert(event, kind)
    except msgspec.ValidationError:
        return None


def item_from_bus(raw: object, kind: type[S]) -> S | None:
    """One item of a list in a message (``kind`` may be any Struct), or ``None``."""
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError:
        return None


# -- the core's own admin events ----------------------------------------------------------


class Revoke(BusMessage, frozen=True, tag="revoke"):
    """``sub``'s sessions are revoked (in ``wedding``, or everywhere), as of ``at``."""

    sub: str
    wedding: str | None = None
    at: float | None = None


class Delete(BusMessage, frozen=True, tag="delete"):
    """The wedding was erased."""

    wedding: str


class Lift(BusMessage, frozen=True, tag="lift"):
    """The wedding's tombstone was lifted (it may be created again)."""

    wedding: str


ADMIN_MESSAGES: frozenset[str] = frozenset(
    str(kind.__struct_config__.tag) for kind in (Revoke, Delete, Lift)
)
"""The types of the core's own admin events (their Structs' tags)."""


# -- the binary frames -----------------------------------------------------------------


class UpdatesMessage(msgspec.Struct, frozen=True):
    """Committed updates of ``doc`` with their store seqs, from process ``origin``.

    Frame: origin, doc (var strings), the count, each seq, each update (var uint length and
    bytes); whatever follows the last update is a newer release's and is ignored."""

    origin: str
    doc: str
    seqs: Sequence[int]
    updates: Sequence[bytes]

    def encode(self) -> bytes:
        parts = [
            write_var_string(self.origin),
            write_var_string(self.doc),
            write_var_uint(len(self.seqs)),
        ]
        parts += [write_var_uint(seq) for seq in self.seqs]
        for update in self.updates:
            parts += [write_var_uint(len(update)), update]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> UpdatesMessage:
        origin, pos = read_var_string(data, 0)
        doc, pos = read_var_string(data, pos)
        count, pos = read_var_uint(data, pos)
        seqs: list[int] = []
        for _ in range(count):
            seq, pos = read_var_uint(data, pos)
            seqs.append(seq)
        updates: list[bytes] = []
        for _ in range(count):
            size, pos = read_var_uint(data, pos)
            if pos + size > len(data):
                raise ProtocolError("bad bus message: an update is cut short")
            updates.append(data[pos : pos + size])
            pos += size
        return cls(origin, doc, seqs, updates)


class AwarenessMessage(msgspec.Struct, frozen=True):
    """An accepted awareness payload of ``doc`` from process ``origin``.

    Frame: origin, doc (var strings), then the payload to the end (a y-protocols awareness
    update, which says its own length of entries)."""

    origin: str
    doc: str
    payload: bytes

    def encode(self) -> bytes:
        return write_var_string(self.origin) + write_var_string(self.doc) + self.payload

    @classmethod
    def decode(cls, data: bytes) -> AwarenessMessage:
        origin, pos = read_var_string(data, 0)
        doc, pos = read_var_string(data, pos)
        return cls(origin, doc, data[pos:])


class StatelessMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """A stateless message (JSON text) for the connections of the room ``room`` in the
    other processes, from process ``origin``; never stored.

    ``text`` goes to every connection of the room that speaks stateless messages (a
    writer's payload, stamped with its sender); without it, ``by_role`` holds one text per
    reader (the server's notices, cut to each reader's field rules: a role, or a role and
    its field set of the guest list, ``vendor+names``), and a connection whose reader it
    does not name is told nothing. Frame: the Struct as a JSON object; a field a
    newer release adds is ignored."""

    origin: str
    room: str
    text: str | None = None
    by_role: dict[str, str] = {}

    def encode(self) -> bytes:
        return msgspec.json.encode(self)

    @classmethod
    def decode(cls, data: bytes) -> StatelessMessage:
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.DecodeError as exc:  # a ValidationError is one too
            raise ProtocolError(f"bad stateless message: {exc}") from exc


# -- which rooms are open where, and what was committed -----------------------------------


class Interest(msgspec.Struct, frozen=True, tag="interest", forbid_unknown_fields=False):
    """Process ``origin`` opened the rooms ``opened`` and closed ``closed``: a process
    publishes a room's committed updates only while another one has it open. With ``ask``,
    every other process answers with all the rooms it has open (a process that just joined
    the bus, or came back to it, knows nobody's)."""

    origin: str
    opened: list[str] = []
    closed: list[str] = []
    ask: bool = False


class Commits(msgspec.Struct, frozen=True, tag="commits", forbid_unknown_fields=False):
    """What process ``origin`` committed since its last such message: each room's store
    seqs, whether or not its updates were published (nobody else had the room open), and
    the newest seq it committed. Sent a few times a second, and at least once a heartbeat
    (with no seqs) while the process lives: a process that has a room open and never heard
    one of these seqs missed that room's updates and catches it up from the store."""

    origin: str
    newest: int = 0
    seqs: dict[str, list[int]] = {}


_ROOMS_DECODER: msgspec.msgpack.Decoder[Interest | Commits] = msgspec.msgpack.Decoder(
    Interest | Commits
)


def read_rooms_message(data: bytes) -> Interest | Commits:
    """An :class:`Interest` or :class:`Commits` (as ``msgspec.msgpack.encode`` wrote it)."""
    try:
        return _ROOMS_DECODER.decode(data)
    except msgspec.DecodeError as exc:  # a ValidationError is one too
        raise ProtocolError(f"bad rooms message: {exc}") from exc
