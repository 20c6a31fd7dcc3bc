"""Protocol fuzzing of the full per-frame path: seed corpus, mutators and the harness.

* **Seeds** (:func:`build_corpus`): real y-protocols frames built from real pycrdt documents:
  sync step 1 (state vectors), step 2 and update frames carrying real Yjs updates (Map, Array,
  Text and Xml edits with nested types, deletes, formatting, embeds, subdocuments,
  unicode/astral text, merged updates, updates of several clients, garbage-collected
  content), awareness frames (encoded by pycrdt's ``Awareness``: object states, removals,
  several entries), query-awareness and auth frames. The frames are encoded here, not with
  the server's codec.
* **Mutations** (:class:`Mutator`): bit flips, byte set/insert/delete/duplicate, varint
  replacement with boundary values (and overlong encodings), truncation, splicing two
  frames, changing the message type/subtype byte, repeating a frame, and replacing awareness
  states with hostile JSON (deep nesting, huge numbers, non-objects, NaN, bad UTF-8, sizes at
  the limit). Payload mutations re-wrap the payload with a correct length, so they reach the
  update and awareness parsers instead of dying in the envelope.
* **Harness** (:func:`run_fuzz`): a real :class:`RoomRegistry` over a real
  :class:`SqliteStore` file; every connection is a :func:`memory_pair` served by
  :func:`serve_connection` as an asyncio task, exactly as the endpoint does. Each mutated
  frame goes to a connection that finished its handshake (reused while it stays open), and
  the harness waits, with a deadline, until the session has read it and waits for the next
  frame (or has ended). No sleeps: waits are on the transport and an event the server end of
  the transport sets, each bounded by a deadline.

Invariants (counted in :class:`FuzzStats`, asserted by the quick test): nothing escapes
``serve_connection`` (a pycrdt panic is a ``BaseException`` and counts as a crash), every
close carries a documented code (1003/1007/1008/1009) and reaches the client, a rejected frame
leaves the room's document byte-identical (``get_update()`` and ``get_state()``, compared
once sorted: pycrdt writes clients and some map keys in hash-map order, different on every
call), other clients' presence untouched and the store's history without new rows, a
read-only connection never changes anything, another room keeps working (a sanity client
edits and gets its echo), no frame takes longer than the deadline (a hang) or makes the
process's peak RSS jump (a memory blow-up), every frame the server sends decodes, no
background task dies with an exception, and the committed log loads (as after a restart) into
the document the room has in memory, and every room is freed once unloaded.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import logging
import os
import random
import re
import resource
import sqlite3
import sys
import time
import traceback
import types
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pycrdt import (
    Array,
    Awareness,
    Doc,
    Map,
    Text,
    TransactionEvent,
    XmlElement,
    XmlFragment,
    XmlText,
    merge_updates,
)

from crdt_server.auth.principals import ANONYMOUS, Principal
from crdt_server.cluster.bus import LocalBus
from crdt_server.codec.protocol import AwarenessMessage, decode_message
from crdt_server.core.connection import Connection
from crdt_server.core.registry import RoomRegistry
from crdt_server.core.room import Room, RoomServices
from crdt_server.errors import ProtocolError
from crdt_server.settings import Settings
from crdt_server.storage import SqliteStore
from crdt_server.testing.inprocess import Activity, ServerEnd, serve_memory
from crdt_server.wire.transport import MemoryTransport, TransportClosed

__all__ = [
    "BOUNDARY_VALUES",
    "DOCUMENTED_CLOSES",
    "READER",
    "SPIKE_KIB",
    "WRITER",
    "Case",
    "Finding",
    "Fingerprint",
    "FuzzConfig",
    "FuzzStats",
    "Link",
    "Mutator",
    "Seed",
    "ServerEnd",
    "awareness_frame",
    "awareness_payload",
    "build_corpus",
    "canonical_update",
    "fingerprint",
    "memory_kib",
    "reframe",
    "reset_peak_rss",
    "rss_kib",
    "run_fuzz",
    "same_document",
    "start_session",
    "sync_frame",
    "var_uint",
]

# -- lib0 / y-protocols encoding (independent of the server's codec) -------------------------

SYNC, AWARENESS, AUTH, QUERY = 0, 1, 2, 3
STEP1, STEP2, UPDATE = 0, 1, 2


def var_uint(value: int) -> bytes:
    """lib0 varuint of any size (the fuzzer also writes ones longer than lib0 allows)."""
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def overlong_var_uint(value: int, extra: int) -> bytes:
    """``value`` encoded with ``extra`` needless continuation bytes (0x80 ... 0x00)."""
    body = bytearray(var_uint(value))
    body[-1] |= 0x80
    body.extend(b"\x80" * (extra - 1))
    body.append(0)
    return bytes(body)


def var_bytes(data: bytes) -> bytes:
    return var_uint(len(data)) + data


def sync_frame(subtype: int, payload: bytes) -> bytes:
    return bytes((SYNC,)) + var_uint(subtype) + var_bytes(payload)


def awareness_frame(payload: bytes) -> bytes:
    return bytes((AWARENESS,)) + var_bytes(payload)


def auth_frame(reason: bytes) -> bytes:
    return bytes((AUTH, 0)) + var_bytes(reason)


Entry = tuple[int, int, bytes]
"""An awareness entry as sent: client id, clock, state (JSON text as bytes)."""


def awareness_payload(entries: Sequence[Entry], count: int | None = None) -> bytes:
    parts = [var_uint(len(entries) if count is None else count)]
    for client, clock, state in entries:
        parts += [var_uint(client), var_uint(clock), var_bytes(state)]
    return b"".join(parts)


def _parse_awareness(payload: bytes) -> list[Entry]:
    """Decode a well-formed awareness payload (seeds only: no error handling needed)."""
    pos = 0

    def uint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = payload[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    entries: list[Entry] = []
    for _ in range(uint()):
        client, clock = uint(), uint()
        size = uint()
        entries.append((client, clock, payload[pos : pos + size]))
        pos += size
    return entries


class _Cursor:
    """Reads a well-formed lib0 v1 update (one pycrdt produced: no error handling)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        data, pos = self.data, self.pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                self.pos = pos
                return value

    def raw_bytes(self) -> bytes:
        """A varUint8Array / varString with its length prefix."""
        start = self.pos
        length = self.uint()
        self.pos += length
        return self.data[start : self.pos]

    def any(self) -> bytes:
        """One Any value, re-encoded with the keys of every object sorted."""
        data = self.data
        start = self.pos
        tag = data[start]
        self.pos += 1
        if tag == 118:
            n = self.uint()
            fields = sorted((self.raw_bytes(), self.any()) for _ in range(n))
            return b"\x76" + var_uint(n) + b"".join(k + v for k, v in fields)
        if tag == 117:
            n = self.uint()
            return b"\x75" + var_uint(n) + b"".join(self.any() for _ in range(n))
        if tag == 125:  # signed varint
            while data[self.pos] & 0x80:
                self.pos += 1
            self.pos += 1
        elif tag == 124:
            self.pos += 4
        elif tag in (123, 122):
            self.pos += 8
        elif tag in (119, 116):
            self.raw_bytes()
        return data[start : self.pos]

    def struct(self) -> bytes:
        """One struct, with any Any content in canonical form."""
        data = self.data
        start = self.pos
        info = data[start]
        self.pos += 1
        ref = info & 0x1F
        if ref in (0, 10):
            self.uint()
            return data[start : self.pos]
        if info & 0x80:
            self.uint()
            self.uint()
        if info & 0x40:
            self.uint()
            self.uint()
        if not info & 0xC0:
            if self.uint() == 1:
                self.raw_bytes()
            else:
                self.uint()
                self.uint()
            if info & 0x20:
                self.raw_bytes()
        if ref == 1:
            self.uint()
        elif ref == 2:
            for _ in range(self.uint()):
                self.raw_bytes()
        elif ref in (3, 4, 5):
            self.raw_bytes()
        elif ref == 6:
            self.raw_bytes()
            self.raw_bytes()
        elif ref == 7:
            if self.uint() in (3, 5):
                self.raw_bytes()
        elif ref == 8:
            head = data[start : self.pos]
            n = self.uint()
            return head + var_uint(n) + b"".join(self.any() for _ in range(n))
        elif ref == 9:
            head = data[start : self.pos] + self.raw_bytes()
            return head + self.any()
        return data[start : self.pos]


def canonical_update(update: bytes) -> bytes:
    """``update`` with its client blocks, delete set and Any object keys sorted.

    pycrdt writes the clients of an update (and the keys of some Any objects, such as a
    subdocument's options) in hash-map order, which differs from one call to the next: the
    same document gives many different ``get_update()`` bytes. Sorted, it gives one.
    """
    cur = _Cursor(update)
    blocks: list[tuple[int, bytes]] = []
    for _ in range(cur.uint()):
        start = cur.pos
        n_structs = cur.uint()
        client = cur.uint()
        cur.uint()
        head = update[start : cur.pos]
        blocks.append((client, head + b"".join(cur.struct() for _ in range(n_structs))))
    deletes: list[tuple[int, list[tuple[int, int]]]] = []
    for _ in range(cur.uint()):
        client = cur.uint()
        ranges = [(cur.uint(), cur.uint()) for _ in range(cur.uint())]
        deletes.append((client, sorted(ranges)))
    out = [var_uint(len(blocks))] + [raw for _, raw in sorted(blocks)]
    out.append(var_uint(len(deletes)))
    for client, ranges in sorted(deletes):
        out += [var_uint(client), var_uint(len(ranges))]
        out += [var_uint(clock) + var_uint(length) for clock, length in ranges]
    return b"".join(out)


def _read_state_vector(state: bytes) -> list[tuple[int, int]]:
    cur = _Cursor(state)
    return [(cur.uint(), cur.uint()) for _ in range(cur.uint())]


Fingerprint = tuple[bytes, bytes, dict[int, bytes]]
"""A document's state vector and delete set (both sorted), and every client's struct block."""


def fingerprint(doc: Doc[Any]) -> Fingerprint:
    """What :func:`canonical_update` of ``doc.get_update()`` says, computed mostly in Rust.

    One ``get_update`` per client, asking for that client's structs only, gives each client
    block on its own (no need to parse structs in Python to find where blocks end).
    """
    state = doc.get_state()
    vector = _read_state_vector(state)
    deletes_only = doc.get_update(state)  # no structs: 0, then the delete set
    ds_len = len(deletes_only) - 1
    blocks: dict[int, bytes] = {}
    pairs = [var_uint(c) + var_uint(k) for c, k in vector]
    head = var_uint(len(pairs) - 1) if pairs else b""
    for i, (client, _) in enumerate(vector):
        update = doc.get_update(head + b"".join(pairs[:i]) + b"".join(pairs[i + 1 :]))
        blocks[client] = update[1 : len(update) - ds_len]
    # Sorted, and without clients at clock 0 (an entry that says nothing).
    canonical_state = b"".join(var_uint(c) + var_uint(k) for c, k in sorted(vector) if k)
    return canonical_state, canonical_update(deletes_only), blocks


def same_document(before: Fingerprint, after: Fingerprint) -> bool:
    """Whether two fingerprints are of the same document (byte-identical once sorted)."""
    if before[0] != after[0] or before[1] != after[1] or before[2].keys() != after[2].keys():
        return False
    for client, block in before[2].items():
        other = after[2][client]
        if block != other and _canonical_block(block) != _canonical_block(other):
            return False
    return True


def same_content(a: Doc[Any], b: Doc[Any]) -> bool:
    """Whether two documents hold the same content, however yrs splits their blocks.

    yrs may split a block of a live document without changing anything (an update whose
    only item is known already but names an origin inside a block: yrs skips the item and
    keeps the split), so the same content can encode differently. Integrating each encoding
    into a fresh document squashes such splits.
    """
    if same_document(fingerprint(a), fingerprint(b)):
        return True

    def reencoded(doc: Doc[Any]) -> Doc[Any]:
        fresh: Doc[Any] = Doc()
        fresh.apply_update(doc.get_update())
        return fresh

    return same_document(fingerprint(reencoded(a)), fingerprint(reencoded(b)))


def _canonical_block(block: bytes) -> bytes:
    return canonical_update(b"\x01" + block + b"\x00")


REFRAME_KINDS = frozenset({"step1", "step2", "update", "awareness", "auth"})


def reframe(kind: str, payload: bytes) -> bytes:
    """Wrap ``payload`` as a frame of ``kind`` with a correct length prefix."""
    if kind == "step1":
        return sync_frame(STEP1, payload)
    if kind == "step2":
        return sync_frame(STEP2, payload)
    if kind == "update":
        return sync_frame(UPDATE, payload)
    if kind == "awareness":
        return awareness_frame(payload)
    if kind == "auth":
        return auth_frame(payload)
    raise ValueError(kind)


# -- the seed corpus ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seed:
    """One real frame: ``kind`` says how ``payload`` is wrapped into ``frame``."""

    kind: str
    label: str
    payload: bytes
    frame: bytes
    entries: tuple[Entry, ...] | None = None
    """For awareness seeds: the decoded entries (structured mutations rebuild them)."""


class _Recorder:
    """A pycrdt document with a fixed client id that records the updates of its own edits."""

    def __init__(self, client_id: int, *, skip_gc: bool = False) -> None:
        self.doc: Doc[Any] = Doc(client_id=client_id, skip_gc=skip_gc)
        self.updates: list[bytes] = []
        self._local = True
        self._subscription = self.doc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        if self._local and len(event.update) > 2:
            self.updates.append(event.update)

    def receive(self, update: bytes) -> None:
        """Apply a remote update without recording it as this document's edit."""
        self._local = False
        try:
            self.doc.apply_update(update)
        finally:
            self._local = True


def _map_doc() -> _Recorder:
    rec = _Recorder(1001)
    m = rec.doc.get("guests", type=Map)
    m["ada"] = "Ada Lovelace"
    m["count"] = 42
    m["negative"] = -7
    m["big"] = 2**53 - 1
    m["pi"] = 3.14159
    m["yes"] = True
    m["nothing"] = None
    m["list"] = [1, "two", 3.5, None, [4, [5]], {"k": "v"}]
    m["object"] = {"a": {"b": {"c": [1, 2, 3]}}, "é": "ü"}
    m["bytes"] = b"\x00\x01\xff"
    m["nested"] = Map({"inner": "x", "deeper": Map({"k": 1})})
    m["array"] = Array([1, 2, Map({"x": 1})])
    m["text"] = Text("nested text")
    with rec.doc.transaction():
        m["ada"] = "Ada"
        del m["negative"]
        m["count"] = 43
    del m["nested"]
    m["nested2"] = Map({"t": Text("deep 𝄞 text")})
    m["emoji key 👰"] = "💍"
    return rec


def _array_doc() -> _Recorder:
    rec = _Recorder(1002)
    a = rec.doc.get("tasks", type=Array)
    a.append("book venue")
    a.extend([1, 2.5, True, None, {"due": "2025-06-01"}])
    a.insert(0, "first")
    a.append(Map({"title": "cake", "done": False}))
    a.append(Array(["x", Array(["y"])]))
    a.append(Text("task note"))
    del a[2:4]
    a.pop()
    a.insert(1, "✨ sparkle")
    a.extend(list(range(100)))
    del a[5:80]
    return rec


def _text_doc() -> _Recorder:
    rec = _Recorder(1003)
    t = rec.doc.get("notes", type=Text)
    t.insert(0, "Hello, world!")
    t.insert(5, " dear", {"bold": True})
    t.format(0, 5, {"italic": True, "color": "#ff0000"})
    t.insert(len(t), " 👩‍👩‍👧‍👦 𝄞 日本語 e\u0301 \u200d end")
    t.insert_embed(3, {"image": "rings.png"})
    t.insert_embed(0, {"formula": "e=mc^2"}, {"inline": True})
    del t[2:6]
    t.format(1, 8, {"bold": None})
    t.insert(0, "lorem ipsum " * 120)
    del t[100:900]
    return rec


def _xml_doc() -> _Recorder:
    rec = _Recorder(1004)
    f = rec.doc.get("layout", type=XmlFragment)
    f.children.append(XmlElement("p", {"class": "intro"}, [XmlText("Welcome")]))
    ul = XmlElement("ul", None, [XmlElement("li", None, [XmlText("one")])])
    f.children.append(ul)
    ul.attributes["data-x"] = "1"
    f.children.append(XmlText("tail ✓"))
    return rec


def _subdoc_doc() -> _Recorder:
    rec = _Recorder(1005)
    m = rec.doc.get("files", type=Map)
    m["contract"] = Doc(guid="sub-contract-1")
    m["ünïcode"] = Doc(guid="sub-ü-2")
    return rec


def _gc_docs() -> list[_Recorder]:
    out = []
    for client, skip_gc in ((1006, False), (1007, True)):
        rec = _Recorder(client, skip_gc=skip_gc)
        t = rec.doc.get("scratch", type=Text)
        t.insert(0, "temporary text that will be deleted")
        a = rec.doc.get("items", type=Array)
        a.extend([Map({"k": 1}), "s", 3])
        del t[0:20]
        del a[0:2]
        out.append(rec)
    return out


def _concurrent_docs() -> list[_Recorder]:
    """Three clients edit the same types, exchange updates, then edit each other's content."""
    recs = [_Recorder(c) for c in (2001, 2002, 2003)]
    for i, rec in enumerate(recs):
        rec.doc.get("shared", type=Text).insert(0, f"client {i} says hi ")
        rec.doc.get("seating", type=Map)[f"table{i}"] = [f"guest{i}", i]
        rec.doc.get("order", type=Array).append(f"item{i}")
    for rec in recs:
        for other in recs:
            if other is not rec:
                rec.receive(other.doc.get_update(rec.doc.get_state()))
    for i, rec in enumerate(recs):
        t = rec.doc.get("shared", type=Text)
        t.insert(7, f"[{i}]")
        del t[0:3]  # deletes another client's characters
        m = rec.doc.get("seating", type=Map)
        m["table0"] = f"taken by {i}"
        arr = rec.doc.get("order", type=Array)
        del arr[0]
        arr.insert(1, {"by": i})
    return recs


@lru_cache(maxsize=1)
def build_corpus() -> tuple[Seed, ...]:
    """Every seed frame, in a fixed order (the client ids are fixed, so it is deterministic)."""
    seeds: list[Seed] = []

    def add(kind: str, label: str, payload: bytes, entries: Sequence[Entry] | None = None) -> None:
        if kind == "query":
            frame = bytes((QUERY,))
        else:
            frame = reframe(kind, payload)
        seeds.append(Seed(kind, label, payload, frame, None if entries is None else tuple(entries)))

    named: list[tuple[str, _Recorder]] = [
        ("map", _map_doc()),
        ("array", _array_doc()),
        ("text", _text_doc()),
        ("xml", _xml_doc()),
        ("subdoc", _subdoc_doc()),
    ]
    named += [(f"gc{i}", rec) for i, rec in enumerate(_gc_docs())]
    named += [(f"concurrent{i}", rec) for i, rec in enumerate(_concurrent_docs())]

    for name, rec in named:
        ups = rec.updates
        for i, update in enumerate(ups):
            add("update", f"update:{name}#{i}", update)
            if i % 3 == 0:
                add("step2", f"step2:{name}#{i}", update)
        full = rec.doc.get_update()
        add("update", f"update:{name}:full", full)
        add("step2", f"step2:{name}:full", full)
        if len(ups) > 1:
            add("update", f"update:{name}:merged", merge_updates(*ups))
        if len(ups) > 2:
            # A gap in one client's clocks: the merged update carries a Skip struct.
            add("update", f"update:{name}:gap", merge_updates(ups[0], ups[2]))
            add("update", f"update:{name}:tail", merge_updates(*ups[len(ups) // 2 :]))
        add("step1", f"step1:{name}", rec.doc.get_state())

    recs = dict(named)
    everything = merge_updates(*(rec.doc.get_update() for _, rec in named))
    add("update", "update:all-clients-merged", everything)
    add("step2", "step2:all-clients-merged", everything)
    c0, c1 = recs["concurrent0"].doc, recs["concurrent1"].doc
    add("step2", "step2:concurrent-diff", c0.get_update(c1.get_state()))
    add("step2", "step2:empty", b"\x00\x00")
    add("update", "update:empty", b"\x00\x00")
    add("step1", "step1:empty", b"\x00")
    merged_doc: Doc[Any] = Doc(client_id=9999)
    merged_doc.apply_update(everything)
    add("step1", "step1:all-clients", merged_doc.get_state())
    add("step1", "step1:huge-clock", var_uint(1) + var_uint(1001) + var_uint(2**32 - 1))

    _awareness_seeds(add)
    add("query", "query", b"")
    add("auth", "auth:denied", "permission denied ⛔".encode())
    return tuple(seeds)


def _awareness_seeds(add: Callable[[str, str, bytes, Sequence[Entry] | None], None]) -> None:
    states: list[tuple[str, dict[str, Any] | None]] = [
        ("cursor", {"user": {"name": "Ada", "color": "#30bced"}, "cursor": {"anchor": 3}}),
        ("unicode", {"user": {"name": "Zoë 👰 花子", "id": "u1"}, "typing": True}),
        ("empty", {}),
        ("numbers", {"selection": None, "nums": [1, 2.5, -3, 1e300], "flags": [True, False]}),
        ("nested", {"a": {"b": {"c": {"d": [[[]]]}}}}),
        ("removal", None),
    ]
    singles: list[Entry] = []
    for i, (label, state) in enumerate(states):
        doc: Doc[Any] = Doc(client_id=3001 + i)
        awareness = Awareness(doc)
        awareness.set_local_state({"first": True})
        awareness.set_local_state(state)
        payload = awareness.encode_awareness_update([doc.client_id])
        entries = _parse_awareness(payload)
        singles += entries
        add("awareness", f"awareness:{label}", payload, entries)
    several = singles[:4]
    add("awareness", "awareness:several", awareness_payload(several), several)
    big: list[Entry] = [(2**53 - 1, 2**32, b'{"edge":true}'), (0, 0, b"{}")]
    add("awareness", "awareness:edge-ids", awareness_payload(big), big)


# -- mutations -------------------------------------------------------------------------------

BOUNDARY_VALUES: tuple[int, ...] = (
    0,
    1,
    2,
    63,
    64,
    127,
    128,
    255,
    256,
    16383,
    16384,
    2**21 - 1,
    2**28,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**49,
    2**53 - 1,
    2**53,
    2**56 - 1,
    2**56,
    2**63,
    2**64 - 1,
    2**70,
)
_INTERESTING_BYTES: tuple[int, ...] = (0x00, 0x01, 0x02, 0x04, 0x07, 0x08, 0x09, 0x0A, 0x7F)
_INTERESTING_BYTES += (0x80, 0x81, 0xC0, 0xF0, 0xFF)
_INTERESTING_BYTES += (116, 117, 118, 119, 120, 123, 124, 125, 126, 127)  # lib0 Any tags
_TYPE_BYTES = (0, 1, 2, 3, 4, 5, 0x7F, 0x80, 0xFF)
KIND_WEIGHTS = {"update": 44, "step2": 14, "step1": 8, "awareness": 26, "query": 3, "auth": 5}
"""How often a case starts from a seed of each kind (there are far more update seeds)."""


@dataclass(frozen=True, slots=True)
class Case:
    """What to send (one frame per message, in order) and how it was made."""

    frames: tuple[bytes | str, ...]
    kind: str


class Mutator:
    """Draws cases from the seeds with ``rng``; deterministic for a given seed."""

    def __init__(self, rng: random.Random, seeds: Sequence[Seed], *, state_limit: int) -> None:
        self.rng = rng
        self.seeds = list(seeds)
        self.state_limit = state_limit
        self._sweep = itertools.count()
        self._frames = [s.frame for s in seeds]
        self._updates = [s.payload for s in seeds if s.kind in ("update", "step2")]
        self._payloads: dict[str, list[bytes]] = {}
        self._by_kind: dict[str, list[Seed]] = {}
        for s in seeds:
            self._payloads.setdefault(s.kind, []).append(s.payload)
            self._by_kind.setdefault(s.kind, []).append(s)
        self._kinds = [k for k in KIND_WEIGHTS if k in self._by_kind]
        self._weights = [KIND_WEIGHTS[k] for k in self._kinds]

    def case(self) -> Case:
        rng = self.rng
        seed = rng.choice(self._by_kind[rng.choices(self._kinds, self._weights)[0]])
        roll = rng.random()
        desc: str
        if roll < 0.05:
            frame, desc = seed.frame, "as-is"
        elif roll < 0.055:
            text = rng.choice([seed.frame.hex(), "hello", "", "\x00", "{}"])
            return Case((text,), f"{seed.label}|text-frame")
        elif seed.entries is not None and roll < 0.5:
            frame, desc = self._awareness(seed.entries)
        elif seed.kind in REFRAME_KINDS and roll < 0.8:
            payload = bytearray(seed.payload)
            pool = self._updates if seed.kind in ("update", "step2") else self._payloads[seed.kind]
            ops = [self._byte_op(payload, pool) for _ in range(self._op_count())]
            frame = reframe(seed.kind, bytes(payload))
            if rng.random() < 0.08:
                data = bytearray(frame)
                ops.append("frame:" + self._frame_op(data))
                frame = bytes(data)
            desc = "payload:" + ",".join(ops)
        else:
            data = bytearray(seed.frame)
            ops = [self._frame_op(data) for _ in range(self._op_count())]
            frame, desc = bytes(data), "frame:" + ",".join(ops)
        frames: tuple[bytes | str, ...] = (frame,)
        if rng.random() < 0.04:
            frames = (frame,) * rng.randint(2, 4)
            desc += "|repeat"
        return Case(frames, f"{seed.label}|{desc}")

    def _op_count(self) -> int:
        roll = self.rng.random()
        if roll < 0.6:
            return 1
        if roll < 0.85:
            return 2
        return self.rng.randint(3, 6)

    def _boundary(self) -> tuple[bytes, str]:
        rng = self.rng
        value = rng.choice(BOUNDARY_VALUES)
        if rng.random() < 0.1:
            extra = rng.randint(1, 9)
            return overlong_var_uint(value, extra), f"{value}+overlong{extra}"
        return var_uint(value), str(value)

    def _byte_op(self, data: bytearray, pool: Sequence[bytes]) -> str:
        """One mutation of ``data`` in place; returns its description."""
        rng = self.rng
        n = len(data)
        op = rng.choices(
            ("flip", "set", "insert", "delete", "dup", "varint", "truncate", "splice"),
            weights=(3, 2, 2, 2, 1, 4, 1, 1),
        )[0]
        if n == 0 and op not in ("insert", "splice"):
            op = "insert"
        if op == "flip":
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(n)] ^= 1 << rng.randrange(8)
            return "flip"
        if op == "set":
            pos = rng.randrange(n)
            data[pos] = rng.choice(_INTERESTING_BYTES) if rng.random() < 0.7 else rng.randrange(256)
            return f"set@{pos}"
        if op == "insert":
            pos = rng.randint(0, n)
            if rng.random() < 0.5:
                blob = bytes(rng.choice(_INTERESTING_BYTES) for _ in range(rng.randint(1, 4)))
            else:
                blob = rng.randbytes(rng.randint(1, 8))
            data[pos:pos] = blob
            return f"insert@{pos}"
        if op == "delete":
            pos = rng.randrange(n)
            del data[pos : pos + rng.randint(1, 16)]
            return f"delete@{pos}"
        if op == "dup":
            start = rng.randrange(n)
            chunk = bytes(data[start : start + rng.randint(1, 64)])
            times = 1 if rng.random() < 0.97 else rng.choice((100, 2000))
            pos = rng.randint(0, n)
            data[pos:pos] = chunk * times
            return f"dup@{pos}x{times}"
        if op == "varint":
            pos = rng.randrange(n)
            end = pos
            while end < n and data[end] & 0x80 and end - pos < 10:
                end += 1
            blob, label = self._boundary()
            data[pos : min(end + 1, n)] = blob
            return f"varint@{pos}={label}"
        if op == "truncate":
            pos = rng.randrange(n)
            del data[pos:]
            return f"truncate@{pos}"
        other = rng.choice(pool)
        cut = rng.randint(0, n)
        data[cut:] = other[rng.randint(0, len(other)) :]
        return f"splice@{cut}"

    def _frame_op(self, data: bytearray) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.1 and data:
            data[0] = rng.choice(_TYPE_BYTES)
            return f"type={data[0]}"
        if roll < 0.2 and len(data) > 1:
            data[1] = rng.choice(_TYPE_BYTES)
            return f"subtype={data[1]}"
        if roll < 0.25:
            data.extend(rng.choice(self._frames) if rng.random() < 0.5 else bytes(data))
            return "concat"
        return self._byte_op(data, self._frames)

    def _awareness(self, seed_entries: Sequence[Entry]) -> tuple[bytes, str]:
        rng = self.rng
        entries = list(seed_entries)
        count: int | None = None
        roll = rng.random()
        i = rng.randrange(len(entries))
        client, clock, state = entries[i]
        if roll < 0.5:
            state, label = self.hostile_state()
            entries[i] = (client, clock, state)
            desc = f"state={label}"
        elif roll < 0.65:
            entries[i] = (rng.choice(BOUNDARY_VALUES), clock, state)
            desc = f"client={entries[i][0]}"
        elif roll < 0.8:
            entries[i] = (client, rng.choice(BOUNDARY_VALUES), state)
            desc = f"clock={entries[i][1]}"
        elif roll < 0.9:
            count = rng.choice(BOUNDARY_VALUES[:12] + (len(entries) + 1, max(0, len(entries) - 1)))
            desc = f"count={count}"
        else:
            copies = rng.choice((2, 63, 64, 65))
            entries = [(client + k, clock, state) for k in range(copies)]
            if rng.random() < 0.5:
                entries = [(client, clock + k, state) for k in range(copies)]
            desc = f"entries={copies}"
        return awareness_frame(awareness_payload(entries, count)), f"awareness:{desc}"

    def hostile_state(self) -> tuple[bytes, str]:
        """A JSON-ish awareness state meant to break a parser or a peer."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.4:
            depth = rng.choice((2, 10, 31, 32, 33, 64, 100, 500, 3000, 9000))
            if rng.random() < 0.6:
                # Sweep the depths around the interpreter's recursion limit (1000 frames,
                # minus however deep the stack already is) one after the other.
                depth = 880 + next(self._sweep) % 121
            shape = rng.randrange(3)
            if shape == 0:
                text = '{"a":' + "[" * depth + "]" * depth + "}"
            elif shape == 1:
                text = '{"a":' * depth + "1" + "}" * depth
            else:  # two levels per step
                half = depth // 2
                text = '{"a":' + '[{"b":' * half + "1" + "}]" * half + "}"
            return text.encode(), f"nested{shape}x{depth}"
        if roll < 0.5:
            digits = rng.choice((20, 400, 4300, 4301, 5000))
            text = rng.choice(
                (
                    '{"n":1e999999}',
                    '{"n":-1e999999}',
                    '{"n":' + "9" * digits + "}",
                    '{"n":NaN}',
                    '{"n":Infinity}',
                    '{"n":-Infinity}',
                    '{"n":1.7976931348623157e308}',
                    '{"n":5e-324}',
                    '{"n":-0.0}',
                    '{"n":123456789012345678901234567890}',
                )
            )
            return text.encode(), "number"
        if roll < 0.7:
            text = rng.choice(
                (
                    "[]",
                    "[1,2]",
                    "1",
                    "-1",
                    '"str"',
                    "true",
                    "false",
                    "",
                    " ",
                    "nul",
                    "null ",
                    " null",
                    "{}",
                    '{"a":1} x',
                    '{"a":1}{}',
                    '[{"a":1}]',
                )
            )
            return text.encode(), "non-object"
        if roll < 0.85:
            blob = rng.choice(
                (
                    b'{"s":"\\ud800"}',
                    b'{"s":"\\udfff\\ud800"}',
                    b'{"s":"\x00"}',
                    b'{"s":"\\u0000"}',
                    "\ufeff{}".encode(),
                    b'{"a":1,"a":2}',
                    b'{"__proto__":{"x":1}}',
                    b'{"user":"not an object"}',
                    b'{"user":{"id":1,"name":null}}',
                    b'{"user":[1]}',
                    b'{"s":"\xff"}',
                    b'{"s":"\xed\xa0\x80"}',
                    b'{"s":"\xf0\x9f"}',
                )
            )
            return blob, "string"
        size = self.state_limit + rng.choice((-1, 0, 1, 2, 1000))
        body = b'{"s":"' + b"x" * max(0, size - 8) + b'"}'
        return body, f"size{len(body)}"


# -- the harness ---------------------------------------------------------------------------

DOCUMENTED_CLOSES = frozenset({1003, 1007, 1008, 1009, 4409})
"""Close codes a peer's bad frame may earn (tests/wire/test_bad_input.py, README); 4409:
the corpus writes as several principals (anonymous and a planner) under the same client
ids, and each id belongs to whichever wrote under it first (crdt_server.core.client_ids)."""

ANONYMOUS_SHARE = 0.7
WRITER = Principal("fuzz-writer", "Fuzz Writer", "planner", can_write=True)
READER = Principal("fuzz-reader", "Fuzz Reader", "vendor", can_write=False)
_STEP1_EMPTY = sync_frame(STEP1, b"\x00")


@dataclass(frozen=True, slots=True)
class FuzzConfig:
    frames: int
    seed: int
    data_dir: Path
    report_every: int = 0
    """Call ``progress`` every this many frames (0: never)."""
    room_frames: int = 300
    """Frames per room before moving to a fresh one (keeps the per-frame snapshot cheap)."""
    sanity_every: int = 250
    """Frames between two edits of the sanity client in the other room."""
    frame_deadline: float = 10.0
    """Seconds a frame may take before it counts as a hang."""
    time_budget: float | None = None
    """Stop early after this many seconds (the quick test's guard against slow machines)."""
    max_message_bytes: int = 64 * 1024
    trace: Path | None = None
    """Write every frame (hex, with its room and principal) here before sending it, unbuffered:
    after a hard crash the file ends with the frame that caused it and the room's history."""


@dataclass(slots=True)
class Finding:
    what: str
    kind: str
    frame: bytes | str
    detail: str = ""
    history: tuple[bytes, ...] = ()
    """The update frames the room accepted before (to reproduce room-level findings)."""

    def render(self) -> str:
        raw = self.frame.encode() if isinstance(self.frame, str) else self.frame
        shown = raw[:256].hex() + ("..." if len(raw) > 256 else "")
        text = " (text frame)" if isinstance(self.frame, str) else ""
        return f"{self.what}: {self.kind}{text} [{len(raw)} bytes] {shown} {self.detail}".rstrip()


@dataclass(slots=True)
class FuzzStats:
    seed: int
    tried: int = 0
    accepted: int = 0
    rejections: Counter[int] = field(default_factory=Counter)
    crashes: int = 0
    """BaseExceptions that are not Exceptions (e.g. pycrdt's PanicException) escaping a session."""
    escaped: int = 0
    """Any exception escaping serve_connection (crashes included)."""
    escaped_types: Counter[str] = field(default_factory=Counter)
    unexpected_closes: Counter[int] = field(default_factory=Counter)
    changed_doc: int = 0
    """Rejected frames after which the document differs."""
    changed_store: int = 0
    """Rejected (or read-only) frames after which the history has new rows."""
    changed_awareness: int = 0
    """Rejected frames after which other connections' presence differs."""
    readonly_changed: int = 0
    """Accepted frames of read-only connections that changed the document or the store."""
    hangs: int = 0
    bad_server_frames: int = 0
    loop_errors: int = 0
    """Exceptions reported to the event loop's handler (e.g. a background task died)."""
    sanity_checks: int = 0
    sanity_failures: int = 0
    rooms: int = 0
    store_mismatches: int = 0
    """Rooms whose committed log does not load (Room.load, as after a restart) into the
    document the room has in memory."""
    lenient_json: int = 0
    """Accepted awareness states that strict JSON (JS ``JSON.parse``) rejects."""
    connections: int = 0
    slowest_ms: float = 0.0
    slowest_kind: str = ""
    slowest_frame: bytes = b""
    slow_frames: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    rss_start_kib: int = 0
    rss_now_kib: int = 0
    rss_max_kib: int = 0
    peak_kib: int = 0
    """Highest VmHWM seen (catches transient allocations that sampling would miss)."""
    retired_rooms: int = 0
    """Rooms dropped by the end: every fuzzed room, and every room loaded to check the log."""
    leaked_rooms: int = 0
    """Of those, rooms still alive after registry.close() and a garbage collection."""
    leak_holders: list[str] = field(default_factory=list)
    """For the first leaked rooms: the chain of objects that keeps each alive."""
    memory_spikes: int = 0
    """Frames during which the peak RSS rose more than SPIKE_KIB above the RSS before."""
    biggest_spike_kib: int = 0
    biggest_spike_kind: str = ""
    biggest_spike_frame: bytes = b""
    reasons: Counter[str] = field(default_factory=Counter)
    """Rejections by close code and (number-free) reason: which layer refused what."""
    logged: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    finding_counts: Counter[str] = field(default_factory=Counter)

    @property
    def violations(self) -> int:
        return (
            self.crashes
            + self.escaped
            + sum(self.unexpected_closes.values())
            + self.changed_doc
            + self.changed_store
            + self.changed_awareness
            + self.readonly_changed
            + self.hangs
            + self.bad_server_frames
            + self.loop_errors
            + self.sanity_failures
            + self.store_mismatches
            + self.memory_spikes
            + self.leaked_rooms
        )

    def note(
        self,
        what: str,
        kind: str,
        frame: bytes | str,
        detail: str = "",
        history: Sequence[bytes] = (),
    ) -> None:
        self.finding_counts[what] += 1
        if self.finding_counts[what] <= 5:
            self.findings.append(Finding(what, kind, frame, detail, tuple(history)))

    def progress_line(self) -> str:
        rate = self.tried / self.elapsed if self.elapsed else 0.0
        closes = " ".join(f"{c}:{n}" for c, n in sorted(self.rejections.items()))
        return (
            f"{self.tried} frames ({rate:.0f}/s), accepted {self.accepted}, rejected {closes},"
            f" violations {self.violations}, rss {self.rss_now_kib // 1024} MiB"
        )

    def render(self) -> str:
        rate = self.tried / self.elapsed if self.elapsed else 0.0
        lines = [
            f"seed                         {self.seed}",
            f"frames tried                 {self.tried}",
            f"accepted                     {self.accepted}",
            f"rejected                     {sum(self.rejections.values())}",
        ]
        for code, n in sorted(self.rejections.items()):
            lines.append(f"  close {code}                 {n}")
        lines += [
            f"crashes (BaseException)      {self.crashes}",
            f"escaped exceptions           {self.escaped}"
            + (f" {dict(self.escaped_types)}" if self.escaped_types else ""),
            f"undocumented close codes     {dict(self.unexpected_closes) or 0}",
            f"rejected but changed doc     {self.changed_doc}",
            f"rejected but appended rows   {self.changed_store}",
            f"rejected but changed others' presence {self.changed_awareness}",
            f"read-only changed doc/store  {self.readonly_changed}",
            f"hangs (> deadline)           {self.hangs}",
            f"undecodable server frames    {self.bad_server_frames}",
            f"event-loop errors            {self.loop_errors}",
            f"other room sanity            {self.sanity_checks - self.sanity_failures}"
            f"/{self.sanity_checks} ok",
            f"rooms / reloaded != memory   {self.rooms} / {self.store_mismatches}",
            f"connections opened           {self.connections}",
            f"accepted non-strict JSON presence {self.lenient_json} (info)",
            f"slowest frame                {self.slowest_ms:.1f} ms: {self.slowest_kind}"
            f" [{len(self.slowest_frame)} bytes] {self.slowest_frame[:32].hex()}",
            f"frames over 10/100 ms        {self.slow_frames['10ms']}/{self.slow_frames['100ms']}",
            f"elapsed                      {self.elapsed:.1f} s ({rate:.0f} frames/s)",
            f"RSS start/end/max (between frames) {self.rss_start_kib // 1024}"
            f"/{self.rss_now_kib // 1024}/{self.rss_max_kib // 1024} MiB"
            f" (growth {self.rss_growth_kib // 1024} MiB)",
            f"peak RSS (VmHWM)             {self.peak_kib // 1024} MiB"
            f" (growth {max(0, self.peak_kib - self.rss_start_kib) // 1024} MiB)",
            f"memory spikes (> {SPIKE_KIB // 1024} MiB in one frame) {self.memory_spikes}",
            f"rooms alive after unload     {self.leaked_rooms} of {self.retired_rooms}",
            *(f"  held by {chain}" for chain in self.leak_holders),
        ]
        if self.biggest_spike_kib >= 1024:
            lines.append(
                f"biggest spike                +{self.biggest_spike_kib // 1024} MiB:"
                f" {self.biggest_spike_kind} [{len(self.biggest_spike_frame)} bytes]"
                f" {self.biggest_spike_frame[:32].hex()}"
            )
        if self.reasons:
            lines.append("rejections by reason (top 20):")
            lines += [f"  {n:7d}  {why}" for why, n in self.reasons.most_common(20)]
        if self.logged:
            lines.append("server log records (warning+):")
            lines += [f"  {n:7d}  {msg}" for msg, n in self.logged.most_common(10)]
        if self.findings:
            lines.append("findings (first 5 of each):")
            lines += [f"  {f.render()}" for f in self.findings]
        return "\n".join(lines)

    @property
    def rss_growth_kib(self) -> int:
        return max(0, self.rss_max_kib - self.rss_start_kib)


def memory_kib() -> tuple[int, int]:
    """(RSS, peak RSS since the last :func:`reset_peak_rss`) of this process in KiB.

    From ``/proc/self/status`` (VmRSS, VmHWM); elsewhere both are ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", "rb") as status:
            text = status.read()
        rss = text.index(b"VmRSS:")
        hwm = text.index(b"VmHWM:")
        return int(text[rss + 6 : text.index(b"kB", rss)]), int(
            text[hwm + 6 : text.index(b"kB", hwm)]
        )
    except (OSError, ValueError):
        peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        return peak, peak


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux ``clear_refs``), so every spike shows."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        pass


SPIKE_KIB = 128 * 1024
"""A frame during which the process's peak RSS rose this much above its RSS is a blow-up."""


def holder_chain(target: object, ignore: Sequence[object] = (), limit: int = 200) -> str:
    """What keeps ``target`` alive, for the report of a leak: every chain of referrers
    (types, the key of a dict, the name of a function) from it to a root, found breadth
    first: a task, a module, a frame, or an object no tracked object refers to (a running
    frame's local, or a reference held in native code). ``ignore``: the caller's own
    references to ``target``."""
    skip = {id(sys._getframe()), *map(id, ignore)}
    skip.add(id(skip))
    queue: list[tuple[object, str]] = [(target, type(target).__qualname__)]
    skip.add(id(queue))
    roots: list[str] = []
    seen = 0
    while queue and seen < limit and len(roots) < 4:
        node, path = queue.pop(0)
        seen += 1
        skip.add(id(node))
        if path.count(" <- ") and isinstance(
            node, asyncio.Task | types.ModuleType | types.FrameType
        ):
            roots.append(path)
            continue
        found = False
        for ref in gc.get_referrers(node):
            if id(ref) in skip:
                continue
            found = True
            skip.add(id(ref))
            queue.append((ref, f"{path} <- {_describe(ref, node)}"))
        if not found:
            roots.append(path + " <- (untracked)")
    return "; ".join(roots) or "no root found"


def _describe(holder: object, held: object) -> str:
    label = type(holder).__qualname__
    if isinstance(holder, dict):
        for key, value in holder.items():
            if value is held:
                return f"{label}[{key!r:.40}]"
    if isinstance(holder, types.FunctionType | types.CodeType | types.MethodType):
        return f"{label} {holder.__qualname__}"
    if isinstance(holder, asyncio.Task | types.ModuleType | types.FrameType):
        return f"{label} {holder!r:.200}"
    return label


def rss_kib() -> int:
    """Resident set size of this process in KiB."""
    return memory_kib()[0]


class _LogCounter(logging.Handler):
    def __init__(self, counts: Counter[str]) -> None:
        super().__init__(logging.WARNING)
        self.counts = counts

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.name}: {record.msg}"] += 1


@dataclass(eq=False)
class Link:
    """One fuzzing connection as the client sees it."""

    client: MemoryTransport
    server: ServerEnd
    task: asyncio.Task[Connection]
    principal: Principal
    changed: asyncio.Event
    conn: Connection | None = None
    sent: int = 0
    consumed: int = 0

    def idle(self) -> bool:
        """The session has read everything we sent and waits for more (or has ended)."""
        return self.task.done() or (self.server.waiting and self.server.received >= self.sent)

    async def send(self, frame: bytes | str) -> None:
        await self.client.send(frame)
        self.sent += 1

    async def wait_until(self, condition: Callable[[], bool], deadline: float) -> bool:
        loop = asyncio.get_running_loop()
        while not condition():
            self.changed.clear()
            if condition():
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await self.changed.wait()
            except TimeoutError:
                return condition()
        return True

    async def drain(self) -> list[bytes | str]:
        """What the server sent so far (already queued: never waits)."""
        out: list[bytes | str] = []
        while self.consumed < self.server.sent:
            out.append(await self.client.receive())
            self.consumed += 1
        return out


def start_session(
    registry: RoomRegistry, settings: Settings, name: str, principal: Principal
) -> Link:
    """Serve a new memory-pair connection to room ``name`` as the endpoint does (through
    the testing kit's in-process harness)."""
    activity = Activity()
    client, end, task = serve_memory(registry, settings, name, principal, activity, peer="fuzz")
    return Link(client, end, task, principal, activity.event)


def _reason_class(reason: str) -> str:
    """A close reason without its numbers and positions, to count rejections by cause."""
    reason = reason.split(" (at byte")[0]
    return re.sub(r"\d+", "N", reason)[:72]


def _strict_json(text: str) -> bool:
    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return True


def _awareness_view(room: Room, exclude: Connection | None) -> dict[int, tuple[int, str]]:
    own = set(room.awareness.clients_of(exclude)) if exclude is not None else set()
    return {
        e.client_id: (e.clock, e.state) for e in room.awareness.states() if e.client_id not in own
    }


class _Fuzzer:
    def __init__(self, config: FuzzConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.settings = Settings(
            data_dir=config.data_dir,
            max_message_bytes=config.max_message_bytes,
            compact_after_updates=200,
            room_idle_seconds=1.0,
            # The per-connection rate limits would close every reused connection within a
            # second (1008) and hide everything behind them; they are tested elsewhere.
            max_updates_per_second=1e9,
            max_awareness_per_second=1e9,
        )
        self.stats = FuzzStats(seed=config.seed)
        self.mutator = Mutator(
            self.rng, build_corpus(), state_limit=self.settings.max_awareness_state_bytes
        )
        self.store = SqliteStore(self.settings.sqlite_path)
        self.registry = RoomRegistry(RoomServices(self.store, self.settings, LocalBus()))
        self.db: sqlite3.Connection | None = None
        self.room: Room | None = None
        self.room_name = ""
        self.link: Link | None = None
        self.sanity: Link | None = None
        self.sanity_doc: Doc[Any] = Doc(client_id=77)
        self.room_log: list[bytes] = []
        """Update frames the current room accepted from writers, in order."""
        self._fingerprint: tuple[Doc[Any], Fingerprint] | None = None
        self._known_seq: int | None = None
        self._retired: list[weakref.ref[Room]] = []
        self._trace = (
            os.open(config.trace, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            if config.trace is not None
            else None
        )
        """The rooms fuzzed so far: after registry.close() nothing should keep them alive."""
        """The history's last seq, while nothing was accepted (or written elsewhere) since."""
        """The fuzz room's document as a rejected frame left it (nothing changed it since)."""

    # -- plumbing --------------------------------------------------------------------------

    def deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.config.frame_deadline

    def _max_seq(self) -> int:
        assert self.db is not None
        (value,) = self.db.execute("SELECT max(seq) FROM history").fetchone()
        return int(value or 0)

    def _rows_after(self, seq: int) -> int:
        assert self.db is not None
        (value,) = self.db.execute("SELECT count(*) FROM history WHERE seq > ?", (seq,)).fetchone()
        return int(value)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        self.stats.loop_errors += 1
        detail = f"{context.get('message')} {context.get('exception')!r}"
        exc = context.get("exception")
        if isinstance(exc, BaseException) and exc.__traceback__ is not None:
            last = traceback.extract_tb(exc.__traceback__)[-1]
            detail += f" at {Path(last.filename).name}:{last.lineno} in {last.name}"
        future = context.get("future") or context.get("task")
        if isinstance(future, asyncio.Task):
            detail += f" (task {future.get_name()} {future.get_coro()!r})"
        self.stats.note("event-loop error", "background", b"", detail)

    async def _flush(self, room: Room, kind: str, frame: bytes | str) -> bool:
        try:
            async with asyncio.timeout(self.config.frame_deadline):
                await room.flush()
        except TimeoutError:
            self.stats.hangs += 1
            self.stats.note("hang (room flush)", kind, frame)
            return False
        return True

    async def _open(self, name: str, principal: Principal, room: Room | None) -> Link | None:
        before = set(room.connections) if room is not None else set()
        link = start_session(self.registry, self.settings, name, principal)
        end, task = link.server, link.task
        self.stats.connections += 1
        deadline = self.deadline()
        ok = await link.wait_until(lambda: end.sent >= 1 or task.done(), deadline)
        greeting = await link.drain()
        if ok and not task.done():
            await link.send(_STEP1_EMPTY)
            ok = await link.wait_until(link.idle, deadline)
            greeting += await link.drain()
        first = greeting[0] if greeting else b""
        if not ok or task.done() or not isinstance(first, bytes) or first[:2] != b"\x00\x00":
            self.stats.note("handshake failed", f"open {name}", first, f"done={task.done()}")
            self.stats.sanity_failures += 1
            await self._abandon(link)
            return None
        if room is not None:
            new = set(room.connections) - before
            link.conn = new.pop() if len(new) == 1 else None
        return link

    async def _close(self, link: Link) -> None:
        """End a connection the way a client does (close frame), and check how it ended."""
        await link.client.close(1000)
        if not await link.wait_until(link.task.done, self.deadline()):
            self.stats.hangs += 1
            self.stats.note("hang (normal close)", "close", b"")
            await self._abandon(link)
            return
        self._outcome(link, "normal close", b"")

    async def _abandon(self, link: Link) -> None:
        """Give up on a stuck or broken connection without leaking its tasks."""
        if link.conn is not None:
            link.conn.request_close(1011, "fuzzer gave up")
        await link.client.close(1011)
        if not await link.wait_until(link.task.done, self.deadline()):
            link.task.cancel()
            await asyncio.wait({link.task}, timeout=self.config.frame_deadline)
        if link.task.done() and not link.task.cancelled():
            link.task.exception()  # retrieved: reported already

    def _outcome(self, link: Link, kind: str, frame: bytes | str) -> int | None:
        """How a finished session ended: its close code, or None if an exception escaped."""
        task = link.task
        if task.cancelled():
            self.stats.escaped += 1
            self.stats.note("session cancelled", kind, frame)
            return None
        exc = task.exception()
        if exc is not None:
            self.stats.escaped += 1
            self.stats.escaped_types[type(exc).__name__] += 1
            if not isinstance(exc, Exception):
                self.stats.crashes += 1
            self.stats.note("escaped exception", kind, frame, f"{type(exc).__name__}: {exc}")
            if link.conn is not None:
                link.conn.request_close(1011, "escaped")
            return None
        code = task.result().close_code
        return 1000 if code is None else code

    def _check_memory(self, frame: bytes | str, kind: str) -> None:
        """Did the process's peak RSS rise far above its RSS before this frame?"""
        stats = self.stats
        rss, peak = memory_kib()
        spike = peak - stats.rss_now_kib
        stats.rss_now_kib = rss
        stats.rss_max_kib = max(stats.rss_max_kib, rss)
        stats.peak_kib = max(stats.peak_kib, peak)
        if spike > stats.biggest_spike_kib:
            stats.biggest_spike_kib = spike
            stats.biggest_spike_kind = kind
            stats.biggest_spike_frame = frame.encode() if isinstance(frame, str) else frame
        if spike > SPIKE_KIB:
            stats.memory_spikes += 1
            stats.note("memory spike", kind, frame, f"+{spike // 1024} MiB")
            reset_peak_rss()

    async def _close_seen(self, link: Link) -> tuple[int, str] | None:
        """The close the client end received (after every frame: already queued)."""
        try:
            await link.client.receive()
        except TransportClosed as exc:
            return exc.code, exc.reason
        return None

    def _validate(self, frames: list[bytes | str], kind: str) -> None:
        for out in frames:
            try:
                if not isinstance(out, bytes):
                    raise ProtocolError("text frame")
                decode_message(out)
            except ProtocolError as exc:
                self.stats.bad_server_frames += 1
                self.stats.note("undecodable server frame", kind, out, str(exc))

    # -- rooms -------------------------------------------------------------------------------

    async def _next_room(self) -> None:
        if self.link is not None:
            await self._close(self.link)
            self.link = None
        if self.room is not None:
            await self._check_store(self.room)
            self.registry.release(self.room)
            self._retired.append(weakref.ref(self.room))
        self.stats.rooms += 1
        self.room_name = f"w1/fuzz-{self.stats.rooms:06d}"
        self.room_log = []
        self.room = await self.registry.acquire(self.room_name)

    async def _check_store(self, room: Room) -> None:
        """The committed log must load (as a restarted server loads it) into the document the
        room has in memory."""
        if not await self._flush(room, "store check", b""):
            return
        try:
            restarted = await Room.load(
                room.name, RoomServices(self.store, self.settings, LocalBus()), lambda _: None
            )
        except Exception as exc:
            self.stats.store_mismatches += 1
            self.stats.note("stored log does not load", room.name, b"", repr(exc), self.room_log)
            return
        self._retired.append(weakref.ref(restarted))
        if not same_content(restarted.doc, room.doc):
            self.stats.store_mismatches += 1
            loaded, memory = restarted.doc.get_state().hex(), room.doc.get_state().hex()
            detail = f"loaded {loaded} in memory {memory}"
            self.stats.note(
                "reloaded room differs from memory", room.name, b"", detail, self.room_log
            )

    async def _sanity_check(self) -> None:
        """The client in the other room edits and must get its echo in time."""
        stats = self.stats
        stats.sanity_checks += 1
        self._known_seq = None  # the sanity room appends to the same history
        link = self.sanity
        if link is None or link.task.done():
            stats.sanity_failures += 1
            stats.note("sanity connection gone", "sanity", b"")
            self.sanity = await self._open("w2/sanity", ANONYMOUS, None)
            return
        state = self.sanity_doc.get_state()
        self.sanity_doc.get("checks", type=Map)["n"] = stats.sanity_checks
        frame = sync_frame(UPDATE, self.sanity_doc.get_update(state))
        await link.send(frame)
        deadline = self.deadline()
        while True:
            ok = await link.wait_until(
                lambda: link.server.sent > link.consumed or link.task.done(), deadline
            )
            received = await link.drain()
            self._validate(received, "sanity")
            if frame in received:
                return
            if not ok or link.task.done():
                stats.sanity_failures += 1
                stats.note("sanity echo missing", "sanity", frame, f"done={link.task.done()}")
                return

    # -- one frame ---------------------------------------------------------------------------

    def _principal(self) -> Principal:
        roll = self.rng.random()
        if roll < ANONYMOUS_SHARE:
            return ANONYMOUS
        return WRITER if roll < (1 + ANONYMOUS_SHARE) / 2 else READER

    async def _play(self, frame: bytes | str, kind: str) -> None:
        stats = self.stats
        room = self.room
        assert room is not None
        link = self.link
        if link is not None and self.rng.random() < 0.02:
            await self._close(link)
            link = self.link = None
        if link is None:
            link = self.link = await self._open(self.room_name, self._principal(), room)
            if link is None:
                return
        if not await self._flush(room, kind, frame):
            return
        cached = self._fingerprint
        if cached is not None and cached[0] is room.doc:
            doc_before = cached[1]
        else:
            doc_before = fingerprint(room.doc)
        self._fingerprint = None
        seq_before = self._max_seq() if self._known_seq is None else self._known_seq
        self._known_seq = None
        presence_before = _awareness_view(room, link.conn)

        if self._trace is not None:
            raw = frame.encode().hex() if isinstance(frame, str) else frame.hex()
            who = link.principal.user_id if link.principal.can_write else "reader"
            text = "text " if isinstance(frame, str) else ""
            os.write(self._trace, f"{self.room_name} {who} {id(link):x} {text}{raw}\n".encode())
        started = time.perf_counter()
        await link.send(frame)
        done = await link.wait_until(link.idle, self.deadline())
        ms = (time.perf_counter() - started) * 1000
        stats.tried += 1
        self._check_memory(frame, kind)
        if ms > stats.slowest_ms:
            stats.slowest_ms = ms
            stats.slowest_kind = kind
            stats.slowest_frame = frame.encode() if isinstance(frame, str) else frame
        if ms > 10:
            stats.slow_frames["10ms"] += 1
        if ms > 100:
            stats.slow_frames["100ms"] += 1
        if not done:
            stats.hangs += 1
            stats.note("hang", kind, frame, f"{ms:.0f} ms")
            self.link = None
            await self._abandon(link)
            return
        self._validate(await link.drain(), kind)

        if link.task.done():
            self.link = None
            code = self._outcome(link, kind, frame)
            if code is not None:
                seen = await self._close_seen(link)
                if seen is None or seen[0] != code:
                    stats.bad_server_frames += 1
                    stats.note("client saw no matching close", kind, frame, f"{seen} != {code}")
                elif code in DOCUMENTED_CLOSES:
                    stats.rejections[code] += 1
                    stats.reasons[f"{code} {_reason_class(seen[1])}"] += 1
                else:
                    stats.unexpected_closes[code] += 1
                    stats.note(f"close {code}", kind, frame, seen[1])
            if not await self._flush(room, kind, frame):
                return
            doc_after = fingerprint(room.doc)
            self._fingerprint = (room.doc, doc_after)  # valid until a frame is accepted
            if not same_document(doc_before, doc_after):
                stats.changed_doc += 1
                why = f"close {code}"
                stats.note("rejected frame changed the document", kind, frame, why, self.room_log)
            if self._rows_after(seq_before):
                stats.changed_store += 1
                stats.note("rejected frame appended history rows", kind, frame, f"close {code}")
            else:
                self._known_seq = seq_before  # valid until something is accepted
            if _awareness_view(room, None) != presence_before:
                stats.changed_awareness += 1
                stats.note("rejected frame changed presence", kind, frame, f"close {code}")
            return

        stats.accepted += 1
        if link.principal.can_write and isinstance(frame, bytes) and frame[:1] == b"\x00":
            if frame[1:2] in (b"\x01", b"\x02"):
                self.room_log.append(frame)
        if not link.principal.can_write:
            if not await self._flush(room, kind, frame):
                return
            doc_after = fingerprint(room.doc)
            changed = not same_document(doc_before, doc_after)
            if changed or self._rows_after(seq_before):
                stats.readonly_changed += 1
                stats.note("read-only frame changed the document", kind, frame)
            else:
                self._fingerprint = (room.doc, doc_after)
                self._known_seq = seq_before
        if isinstance(frame, bytes) and frame[:1] == b"\x01":
            self._check_presence_json(frame, kind)

    def _check_presence_json(self, frame: bytes, kind: str) -> None:
        """Informational: presence the server relays that a browser's JSON.parse refuses."""
        message = decode_message(frame)
        assert isinstance(message, AwarenessMessage)
        try:
            entries = _parse_awareness(message.payload)
        except IndexError:
            return
        for _, _, state in entries:
            text = state.decode("utf-8", "replace")
            if text != "null" and not _strict_json(text):
                self.stats.lenient_json += 1
                self.stats.note("relayed presence is not strict JSON", kind, frame)
                return

    # -- the run -----------------------------------------------------------------------------

    async def run(
        self, progress: Callable[[FuzzStats], None] | None, stop: Callable[[], bool] | None
    ) -> FuzzStats:
        stats = self.stats
        config = self.config
        loop = asyncio.get_running_loop()
        old_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_error)
        counter = _LogCounter(stats.logged)
        server_log = logging.getLogger("crdt_server")
        server_log.addHandler(counter)
        started = time.perf_counter()
        try:
            await self.store.open()
            self.db = sqlite3.connect(f"file:{self.settings.sqlite_path}?mode=ro", uri=True)
            self.sanity = await self._open("w2/sanity", ANONYMOUS, None)
            await self._next_room()
            reset_peak_rss()
            stats.rss_start_kib = stats.rss_now_kib = stats.rss_max_kib = rss_kib()
            frame_no = 0
            next_report = config.report_every
            while stats.tried < config.frames:
                if config.time_budget and time.perf_counter() - started > config.time_budget:
                    break
                if stop is not None and stop():
                    break
                case = self.mutator.case()
                for frame in case.frames:
                    await self._play(frame, case.kind)
                frame_no += 1
                if frame_no % config.room_frames == 0:
                    await self._next_room()
                if frame_no % config.sanity_every == 0:
                    await self._sanity_check()
                if progress and config.report_every and stats.tried >= next_report:
                    next_report += config.report_every
                    stats.elapsed = time.perf_counter() - started
                    progress(stats)
            await self._sanity_check()
            if self.link is not None:
                await self._close(self.link)
                self.link = None
            if self.room is not None:
                await self._check_store(self.room)
                self.registry.release(self.room)
                self._retired.append(weakref.ref(self.room))
                self.room = None
        finally:
            stats.elapsed = time.perf_counter() - started
            await self._shutdown()
            server_log.removeHandler(counter)
            loop.set_exception_handler(old_handler)
        # Every room is unloaded now (registry.close): none may outlive it.
        self.link = self.sanity = None
        self._fingerprint = None
        gc.collect()
        stats.retired_rooms = len(self._retired)
        leaked = [ref() for ref in self._retired if ref() is not None]
        stats.leaked_rooms = len(leaked)
        stats.leak_holders = [holder_chain(room, [leaked]) for room in leaked[:3]]
        del leaked
        stats.rss_now_kib = rss_kib()
        stats.rss_max_kib = max(stats.rss_max_kib, stats.rss_now_kib)
        return stats

    async def _shutdown(self) -> None:
        if self.sanity is not None and not self.sanity.task.done():
            await self._close(self.sanity)
        if self.link is not None and not self.link.task.done():
            await self._abandon(self.link)
        await self.registry.close()
        await self.store.close()
        if self.db is not None:
            self.db.close()
        if self._trace is not None:
            os.close(self._trace)


async def run_fuzz(
    config: FuzzConfig,
    progress: Callable[[FuzzStats], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> FuzzStats:
    """Fuzz the full message path in this process; returns what happened.

    ``progress`` is called every ``config.report_every`` frames; ``stop`` is polled between
    cases (true: finish early, with every check of the frames tried so far done).
    """
    return await _Fuzzer(config).run(progress, stop)


# -- running isolated: a hard crash (SIGSEGV in pycrdt) must be reported, not be the end -------

ROOT = Path(__file__).resolve().parents[2]
_VIOLATION_FIELDS = (
    "crashes",
    "escaped",
    "changed_doc",
    "changed_store",
    "changed_awareness",
    "readonly_changed",
    "hangs",
    "bad_server_frames",
    "loop_errors",
    "sanity_failures",
    "store_mismatches",
    "memory_spikes",
    "leaked_rooms",
)


def stats_json(stats: FuzzStats) -> dict[str, Any]:
    """The counters of ``stats`` as JSON-able data, with the rendered report."""
    out: dict[str, Any] = {
        name: getattr(stats, name)
        for name in (
            "seed",
            "tried",
            "accepted",
            "sanity_checks",
            "rooms",
            "retired_rooms",
            "lenient_json",
            "connections",
            "slowest_ms",
            "slowest_kind",
            "elapsed",
            "rss_start_kib",
            "rss_max_kib",
            "peak_kib",
            *_VIOLATION_FIELDS,
        )
    }
    out["rejections"] = {str(code): n for code, n in sorted(stats.rejections.items())}
    out["unexpected_closes"] = {str(code): n for code, n in stats.unexpected_closes.items()}
    out["escaped_types"] = dict(stats.escaped_types)
    out["reasons"] = dict(stats.reasons)
    out["violations"] = stats.violations
    out["slowest_frame"] = stats.slowest_frame.hex()
    out["findings"] = [f.render() for f in stats.findings]
    out["finding_details"] = [
        {
            "what": f.what,
            "kind": f.kind,
            "frame": f.frame.encode().hex() if isinstance(f.frame, str) else f.frame.hex(),
            "text_frame": isinstance(f.frame, str),
            "detail": f.detail,
            "history": [frame.hex() for frame in f.history],
        }
        for f in stats.findings
    ]
    out["report"] = stats.render()
    return out


@dataclass(slots=True)
class IsolatedRun:
    """How a fuzz run in a child process ended."""

    returncode: int
    stats: dict[str, Any] | None
    """What :func:`stats_json` wrote (``complete`` once the run ended; after a crash, the
    counters of the last progress report), or ``None`` if the child wrote nothing."""
    stderr: str
    trace: Path

    @property
    def crashed(self) -> bool:
        return self.returncode != 0 or self.stats is None or not self.stats.get("complete")

    @property
    def tried(self) -> int:
        """Frames the child sent: from its stats, or (after a crash) from its trace."""
        if not self.crashed and self.stats is not None:
            return int(self.stats["tried"])
        return len(self.last_frames(10**9))

    def last_frames(self, count: int = 1) -> list[str]:
        """The last trace lines: the frame being processed when the child died, and before."""
        try:
            lines = self.trace.read_text().splitlines()
        except OSError:
            return []
        return lines[-count:]

    def crash_summary(self) -> str:
        """One line: how the child died and what it was processing."""
        last = self.last_frames()
        frame = last[0] if last else "-"
        frame = frame if len(frame) <= 160 else frame[:160] + "..."
        return f"child exited with {self.returncode}; last frame: {frame}; trace: {self.trace}"

    def crash_report(self) -> str:
        last = self.last_frames()
        room = last[0].split()[0] if last else ""
        history = [line for line in self.last_frames(10**9) if line.split()[:1] == [room]]
        fault = [line for line in self.stderr.splitlines() if "Fatal Python error" in line]
        return "\n".join(
            [
                f"child exited with {self.returncode} ({' '.join(fault) or 'no fatal error line'})",
                f"last frame (room principal connection hex): {last[0] if last else '-'}",
                f"{len(history)} frames of room {room} in {self.trace} reproduce it (in order)",
                "stderr tail:",
                *self.stderr.splitlines()[-25:],
            ]
        )


def run_isolated(
    config: FuzzConfig,
    *,
    timeout: float,
    echo: Callable[[str], None] | None = None,
    popen_hook: Callable[[Any], None] | None = None,
) -> IsolatedRun:
    """Run the fuzzer in a child process (``python -m tests.fuzz.corpus``), every frame traced
    to ``config.trace`` (default: next to the data directory) before it is sent.

    A child that dies (a SIGSEGV in pycrdt cannot be caught in Python) is a crash; the trace
    ends with the frame that caused it. ``echo`` gets the child's progress lines.
    """
    import subprocess
    import sys

    trace = config.trace or config.data_dir.parent / "fuzz-trace.txt"
    out = config.data_dir.parent / "fuzz-stats.json"
    out.unlink(missing_ok=True)
    args = [
        sys.executable,
        "-X",
        "faulthandler",
        "-m",
        "tests.fuzz.corpus",
        f"--frames={config.frames}",
        f"--seed={config.seed}",
        f"--data-dir={config.data_dir}",
        f"--report-every={config.report_every}",
        f"--room-frames={config.room_frames}",
        f"--sanity-every={config.sanity_every}",
        f"--deadline={config.frame_deadline}",
        f"--max-message-bytes={config.max_message_bytes}",
        f"--trace={trace}",
        f"--out={out}",
    ]
    if config.time_budget is not None:
        args.append(f"--time-budget={config.time_budget}")
    env = dict(os.environ, RUST_BACKTRACE="0", PYTHONUNBUFFERED="1")
    with subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        if popen_hook is not None:
            popen_hook(child)
        with _Drain(child.stdout, echo), _Drain(child.stderr) as stderr:
            try:
                returncode = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                returncode = child.wait()
    stats = json.loads(out.read_text()) if out.exists() else None
    return IsolatedRun(returncode, stats, stderr.text, trace)


class _Drain:
    """Read a child's pipe on a thread: it never blocks on a full pipe, and a silent child
    cannot block the parent (which waits with a timeout instead)."""

    def __init__(self, pipe: Any, echo: Callable[[str], None] | None = None) -> None:
        import threading

        self._pipe = pipe
        self._echo = echo
        self._lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        for line in self._pipe:
            if self._echo is not None:
                self._echo(line.rstrip("\n"))
            self._lines.append(line)
            if len(self._lines) > 4000:  # keep the tail (panic messages can be many)
                del self._lines[:2000]

    def __enter__(self) -> _Drain:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(timeout=10)

    @property
    def text(self) -> str:
        return "".join(self._lines)


def _child_main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.fuzz.corpus``: one fuzz run; the stats go to --out as JSON."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.corpus")
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trace", type=Path, default=None)
    parser.add_argument("--report-every", type=int, default=0)
    parser.add_argument("--room-frames", type=int, default=300)
    parser.add_argument("--sanity-every", type=int, default=250)
    parser.add_argument("--deadline", type=float, default=10.0)
    parser.add_argument("--max-message-bytes", type=int, default=64 * 1024)
    parser.add_argument("--time-budget", type=float, default=None)
    args = parser.parse_args(argv)
    config = FuzzConfig(
        frames=args.frames,
        seed=args.seed,
        data_dir=args.data_dir,
        report_every=args.report_every,
        room_frames=args.room_frames,
        sanity_every=args.sanity_every,
        frame_deadline=args.deadline,
        time_budget=args.time_budget,
        max_message_bytes=args.max_message_bytes,
        trace=args.trace,
    )

    def progress(stats: FuzzStats) -> None:
        print(f"[{stats.elapsed:7.1f}s] {stats.progress_line()}", flush=True)
        # So that the counters up to here survive if the process dies later on.
        partial = args.out.with_suffix(".partial")
        partial.write_text(json.dumps(stats_json(stats)))
        partial.replace(args.out)

    async def main() -> FuzzStats:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        return await run_fuzz(config, progress, stopping.is_set)

    stats = asyncio.run(main())
    result = stats_json(stats)
    result["complete"] = True
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(_child_main())
