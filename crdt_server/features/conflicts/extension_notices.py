"""What the server tells a document's Hocuspocus providers as stateless messages: a new
finding (a table over capacity, overlapping bookings...) and a lost write (a concurrent
edit), each cut to the field rules of the connection's role and, for a vendor member, of
the field set the couple chose for them.

A Hocuspocus provider (``/collab``) hears them through ``onStateless``; a y-websocket
client on ``/sync`` has no such message and reads the same findings from the conflicts room.
Each message is JSON, stamped as the server, as a writer's payloads are stamped with theirs::

    {"from": {"sub": "server", "name": "crdt-server"},
     "payload": {"type": "finding", "id", "code", "paths", "message"}}
    {"from": {"sub": "server", "name": "crdt-server"},
     "payload": {"type": "lost-write", "id", "doc", "path", "field", "kind", "message",
                 "lost": {"actor", "at", "value"?}, "kept": {"actor", "at", "value"?} | null}}

A notice about a field the role may not read carries no ``value`` (its actor and time only),
one about a whole entry leaves that field out of the value, and a finding's message never
quotes a hidden field (:mod:`crdt_server.documents.redaction`); a finding whose paths reach a
document the role may not read is not sent to it. Sent once committed (after the findings'
events), to the connections of this process (the wedding's owner worker serves its
``/collab/{wedding_id}`` sockets) and, through the bus, to those of the other processes (a
bare ``/collab`` socket serves documents of any wedding where it landed): each reader's
text (a role, or a role and a field set) is cut here and told there to the connections of
that reader only. Never stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from crdt_server.auth.permissions import GUEST_FIELD_SETS, ROLES, PermissionMatrix
from crdt_server.auth.principals import reader_key
from crdt_server.core.views import RoomsView
from crdt_server.documents import Conflict
from crdt_server.documents.redaction import conflict_for_reader, finding_for_reader
from crdt_server.names import projection_name
from crdt_server.settings import Settings

__all__ = ["FROM_SERVER", "Notices"]

Reader = tuple[str, str | None]
"""Who a text is cut for: a role, and a vendor member's field set of the guest list."""

log = logging.getLogger("crdt_server.conflicts")

FROM_SERVER = {"sub": "server", "name": "crdt-server"}
"""Who a server's stateless message is from (a writer's carry their ``sub`` and ``name``)."""

_LOST_WRITE_KEYS = ("id", "doc", "path", "field", "kind", "message", "lost", "kept")


class Notices:
    """Sends the server's stateless messages to the rooms of one document of a wedding
    (the document and its projections), in this process and the others."""

    def __init__(self, registry: RoomsView, settings: Settings) -> None:
        self._registry = registry
        text = settings.permissions
        self._permissions = PermissionMatrix.from_json(text) if text else PermissionMatrix()
        roles = tuple(dict.fromkeys((*ROLES, *self._permissions.roles)))
        self._readers: tuple[Reader, ...] = (
            *((r, None) for r in roles),
            *(("vendor", f) for f in GUEST_FIELD_SETS),
        )

    def finding(self, wedding: str, key: str, conflict: Conflict) -> int:
        """Tell the readers of every document ``conflict`` is about that it was found;
        the number of connections told."""
        docs = sorted({path.split("/", 1)[0] for path in conflict.paths})
        permissions = self._permissions

        def build(reader: Reader, doc: str) -> dict[str, Any] | None:
            role, fields = reader
            if not all(permissions.access(role, d, None, fields).can_read for d in docs):
                return None
            shown = conflict_for_reader(conflict, permissions.hidden_fields(role, doc, fields))
            return {
                "type": "finding",
                "id": key,
                "code": shown.code,
                "paths": list(shown.paths),
                "message": shown.message,
            }

        return sum(self._send(wedding, doc, build) for doc in docs)

    def lost_write(self, wedding: str, view: Mapping[str, Any]) -> int:
        """Tell the readers of a concurrent edit's document (``view`` as
        :func:`~crdt_server.features.conflicts.extension_concurrent.finding_view` makes it)
        that a write was lost; the number of connections told."""
        doc = str(view["doc"])
        permissions = self._permissions

        def build(reader: Reader, doc: str) -> dict[str, Any] | None:
            role, fields = reader
            if not permissions.access(role, doc, None, fields).can_read:
                return None
            shown = finding_for_reader(view, permissions.hidden_fields(role, doc, fields))
            return {"type": "lost-write", **{k: shown[k] for k in _LOST_WRITE_KEYS}}

        return self._send(wedding, doc, build)

    def _send(
        self, wedding: str, doc: str, build: Callable[[Reader, str], dict[str, Any] | None]
    ) -> int:
        rooms = self._registry.rooms
        bus = self._registry.bus
        # The document's room and its projections, each with the readers (a role, and the
        # field set of a vendor member) whose texts the other processes are sent for it:
        # those that read the document through it.
        permissions = self._permissions
        by_room: dict[str, list[Reader]] = {f"{wedding}/{doc}": []}
        for reader in self._readers:
            key = permissions.projection_key(reader[0], doc, reader[1])
            name = f"{wedding}/{doc}" if key is None else projection_name(wedding, doc, key)
            if name is not None:
                by_room.setdefault(name, []).append(reader)
        texts: dict[Reader, str | None] = {}  # one message per reader, many connections

        def text(reader: Reader) -> str | None:
            if reader not in texts:
                payload = build(reader, doc)
                texts[reader] = (
                    None
                    if payload is None
                    else json.dumps(
                        {"from": FROM_SERVER, "payload": payload}, separators=(",", ":")
                    )
                )
            return texts[reader]

        told = 0
        for name, readers in by_room.items():
            room = rooms.get(name)
            if room is not None:
                for conn in list(room.connections):
                    principal = conn.principal
                    said = text((principal.role, principal.guest_fields))
                    if said is not None and conn.tell(said):
                        told += 1
            if bus.shared:
                # The room's connections in the other processes (bare /collab sockets serve
                # documents of any wedding): each reader's text, cut to its field rules
                # there, keyed as :attr:`Principal.reader` names it.
                by_reader = {reader_key(*r): said for r in readers if (said := text(r)) is not None}
                if by_reader:
                    bus.publish_stateless(name, by_reader)
        return told
