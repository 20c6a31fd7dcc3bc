"""Conformance suite for :class:`storage.DocumentStore` backends (see ``conftest.py``).

Contents are checked through pycrdt: a store is right when a fresh Doc that applies its
loaded log shows what a Doc applying every update ever appended shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycrdt import Array, Doc, Map, Text, merge_updates

from crdt_server.features.events import (
    add_events,
    erase_entity_events,
    last_event_seq,
    purge_events,
    read_events,
    store_events,
)
from crdt_server.storage import (
    DocumentStore,
    EventFilter,
    Gateway,
    NewEvent,
    NewUpdate,
    Once,
    PostgresStore,
    Revocation,
    Schema,
    SqliteStore,
    StoredEvent,
    StoredLog,
    StoreError,
    audience_of,
)
from crdt_server.storage.gateway import Sql, Tx
from tests.storage.conftest import writer_in_flight
from tests.tier import examples

if TYPE_CHECKING:
    from tests.storage.conftest import Backend, OpenStore

# -- pycrdt helpers ---------------------------------------------------------------------


def fresh_doc(updates: Sequence[bytes]) -> Doc[Any]:
    """A fresh Doc holding ``updates``, applied as one merged update.

    Not one by one: pycrdt 0.14.13 (yrs) loses content when two updates that both miss a
    dependency are applied before it arrives (text "aa" typed as u1, u2 plus an array
    insert u3: applying u2, u3, u1 shows "a"; u1, u2, u3 or merge(u2, u3), u1 show "aa").
    The store keeps every byte either way; this keeps the check about the store.
    """
    doc: Doc[Any] = Doc()
    if updates:
        doc.apply_update(merge_updates(*updates))
    return doc


def content(updates: Sequence[bytes]) -> dict[str, Any]:
    """What a fresh Doc holding ``updates`` shows."""
    doc = fresh_doc(updates)
    return {
        "text": str(doc.get("text", type=Text)),
        "arr": doc.get("arr", type=Array).to_py(),
        "map": doc.get("map", type=Map).to_py(),
    }


def snapshot_of(updates: Sequence[bytes]) -> bytes:
    """Fold a log into one update the way a server would: load it, re-encode the Doc.

    Only lossless when nothing in the log is pending (missing a dependency): pycrdt's
    ``Doc.get_update()`` leaves pending structs out, so use ``merge_updates`` then.
    """
    return fresh_doc(updates).get_update()


def text_updates(*chunks: str) -> list[bytes]:
    """One update per appended chunk of a single Text: each depends on the one before."""
    doc: Doc[Any] = Doc()
    text = doc.get("text", type=Text)
    out: list[bytes] = []
    doc.observe(lambda event: out.append(event.update))
    for chunk in chunks:
        text += chunk
    assert len(out) == len(chunks)
    return out


def ups(doc: str, updates: Iterable[bytes], origin: str = "test") -> list[NewUpdate]:
    return [NewUpdate(doc=doc, data=data, origin=origin) for data in updates]


def assert_increasing(seqs: Sequence[int], after: int = 0) -> None:
    assert all(isinstance(seq, int) for seq in seqs)
    assert list(seqs) == sorted(set(seqs)), seqs
    assert not seqs or seqs[0] > after, (seqs, after)


# -- property test: random real Yjs traffic, compaction and restarts --------------------

Edit = tuple[Any, ...]
DOC_NAMES = ("wedding/1", "wedding_1")  # "_" is a LIKE wildcard: matches "wedding/1"
NEVER_USED = "wedding%1"

edits = st.one_of(
    st.tuples(st.just("text_insert"), st.integers(0, 40), st.text("abc xyz", min_size=1)),
    st.tuples(st.just("text_delete"), st.integers(0, 40), st.integers(1, 4)),
    st.tuples(st.just("arr_insert"), st.integers(0, 40), st.integers(-9, 9)),
    st.tuples(st.just("arr_delete"), st.integers(0, 40)),
    st.tuples(st.just("map_set"), st.sampled_from("kvw"), st.integers(-9, 9)),
    st.tuples(st.just("map_delete"), st.sampled_from("kvw")),
)


@dataclass(frozen=True)
class AppendOp:
    doc: int
    author: int
    edits: tuple[Edit, ...]
    # one_call: all updates in one append(); calls: one append() each, in turn;
    # concurrent: one append() each, from concurrent tasks; hold: the first update is
    # withheld (until a ReleaseOp), so the others stay pending in Yjs.
    mode: Literal["one_call", "calls", "concurrent", "hold"]


@dataclass(frozen=True)
class ReleaseOp:
    """Append every withheld update, of both documents, in one append() call."""


@dataclass(frozen=True)
class SyncOp:
    """The two authors of a document exchange state, so later edits depend on each other."""

    doc: int


@dataclass(frozen=True)
class CompactOp:
    doc: int
    merge: bool  # build the snapshot with merge_updates rather than through a Doc
    concurrent_edits: tuple[Edit, ...]  # appended by a task racing the compaction


@dataclass(frozen=True)
class ReopenOp:
    pass


append_ops = st.builds(
    AppendOp,
    doc=st.integers(0, 1),
    author=st.integers(0, 1),
    edits=st.lists(edits, min_size=1, max_size=4).map(tuple),
    mode=st.sampled_from(["one_call", "calls", "concurrent", "hold"]),
)
hold_ops = st.builds(
    AppendOp,
    doc=st.integers(0, 1),
    author=st.integers(0, 1),
    edits=st.lists(edits, min_size=2, max_size=4).map(tuple),
    mode=st.just("hold"),
)
operations = st.lists(
    st.one_of(
        append_ops,
        append_ops,
        append_ops,
        hold_ops,
        st.builds(ReleaseOp),
        st.builds(SyncOp, doc=st.integers(0, 1)),
        st.builds(
            CompactOp,
            doc=st.integers(0, 1),
            merge=st.booleans(),
            concurrent_edits=st.lists(edits, max_size=2).map(tuple),
        ),
        st.builds(ReopenOp),
    ),
    max_size=14,
)


class Author:
    """A client editing its own replica of a document; captures the updates it makes."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.text = self.doc.get("text", type=Text)
        self.arr = self.doc.get("arr", type=Array)
        self.map = self.doc.get("map", type=Map)
        self.out: list[bytes] = []
        self.muted = False
        self.doc.observe(self._on_update)

    def _on_update(self, event: Any) -> None:
        if not self.muted:
            self.out.append(event.update)

    def edit(self, edits: Iterable[Edit]) -> list[bytes]:
        for kind, *args in edits:
            # Text positions are UTF-8 byte offsets in pycrdt: the alphabet is ASCII.
            if kind == "text_insert":
                self.text.insert(args[0] % (len(self.text) + 1), args[1])
            elif kind == "text_delete" and len(self.text):
                start = args[0] % len(self.text)
                del self.text[start : min(len(self.text), start + args[1])]
            elif kind == "arr_insert":
                self.arr.insert(args[0] % (len(self.arr) + 1), args[1])
            elif kind == "arr_delete" and len(self.arr):
                del self.arr[args[0] % len(self.arr)]
            elif kind == "map_set":
                self.map[args[0]] = args[1]
            elif kind == "map_delete" and args[0] in self.map:
                del self.map[args[0]]
        made, self.out = self.out, []
        return made

    def absorb(self, update: bytes) -> None:
        self.muted = True  # a received update is not a new one to store
        try:
            self.doc.apply_update(update)
        finally:
            self.muted = False


@dataclass
class Model:
    """Everything appended so far, per document, to compare the store against."""

    appended: dict[str, list[bytes]] = field(default_factory=lambda: {n: [] for n in DOC_NAMES})
    withheld: dict[str, list[bytes]] = field(default_factory=lambda: {n: [] for n in DOC_NAMES})
    history: dict[str, list[tuple[int, str, int]]] = field(
        default_factory=lambda: {n: [] for n in DOC_NAMES}
    )
    last_seq: int = 0

    def record(self, calls: Sequence[Sequence[NewUpdate]], results: Sequence[list[int]]) -> None:
        """Check the seqs of append() calls that ran together, then remember them."""
        every: list[int] = []
        for call, seqs in zip(calls, results, strict=True):
            assert len(seqs) == len(call)
            assert_increasing(seqs, after=self.last_seq)
            every += seqs
            for update, seq in zip(call, seqs, strict=True):
                self.appended[update.doc].append(update.data)
                self.history[update.doc].append((seq, update.origin, len(update.data)))
        assert len(set(every)) == len(every)
        self.last_seq = max(every, default=self.last_seq)


async def append_calls(
    store: DocumentStore, model: Model, calls: list[list[NewUpdate]], concurrent: bool
) -> None:
    if concurrent:
        results = await asyncio.gather(*(store.append(call) for call in calls))
    else:
        results = [await store.append(call) for call in calls]
    model.record(calls, results)


async def check(store: DocumentStore, model: Model) -> None:
    for name in DOC_NAMES:
        log = await store.load(name)
        expected = model.appended[name]
        if not expected:
            assert log is None
            assert await store.history(name) == []
            continue
        assert log is not None
        assert content(log.updates) == content(expected)
        newest = max(seq for seq, _, _ in model.history[name])
        assert log.first_seq <= log.last_seq == newest
        entries = await store.history(name, limit=10_000)
        assert [(h.seq, h.origin, h.size) for h in entries] == sorted(
            model.history[name], reverse=True
        )
        assert all(h.doc == name for h in entries)
    assert await store.load(NEVER_USED) is None
    assert await store.last_seqs([*DOC_NAMES, NEVER_USED]) == {
        name: max(seq for seq, _, _ in model.history[name])
        for name in DOC_NAMES
        if model.appended[name]
    }
    assert await store.list() == sorted(n for n in DOC_NAMES if model.appended[n])
    assert await store.list("wedding/") == (["wedding/1"] if model.appended["wedding/1"] else [])


class Run:
    """One example: a store, the authors writing to it and the model of what it holds."""

    def __init__(self, backend: Backend, workdir: Path) -> None:
        self.make_store = backend.factory(workdir)
        self.store = self.make_store()
        self.authors = {name: (Author(), Author()) for name in DOC_NAMES}
        self.model = Model()

    async def append(self, op: AppendOp) -> None:
        name = DOC_NAMES[op.doc]
        made = self.authors[name][op.author].edit(op.edits)
        calls = ups(name, made, origin=f"author-{op.author}")
        if op.mode == "hold" and len(calls) > 1:
            self.model.withheld[name].append(made[0])
            calls = calls[1:]
        if op.mode in ("one_call", "hold"):
            await append_calls(self.store, self.model, [calls], concurrent=False)
        else:
            singles = [[update] for update in calls]
            await append_calls(self.store, self.model, singles, op.mode == "concurrent")

    async def release(self) -> None:
        withheld = self.model.withheld
        late = [u for name in DOC_NAMES for u in ups(name, withheld[name], "late")]
        await append_calls(self.store, self.model, [late], concurrent=False)
        self.model.withheld = {name: [] for name in DOC_NAMES}

    def sync(self, op: SyncOp) -> None:
        a, b = self.authors[DOC_NAMES[op.doc]]
        a.absorb(b.doc.get_update(a.doc.get_state()))
        b.absorb(a.doc.get_update(b.doc.get_state()))

    async def compact(self, op: CompactOp) -> None:
        name = DOC_NAMES[op.doc]
        log = await self.store.load(name)
        if log is None:
            return
        # Doc.get_update() would drop pending structs: only merge_updates is safe then.
        if op.merge or self.model.withheld[name]:
            snapshot = merge_updates(*log.updates)
        else:
            snapshot = snapshot_of(log.updates)
        racing = ups(name, self.authors[name][0].edit(op.concurrent_edits), "racer")
        _, seqs = await asyncio.gather(
            self.store.compact(name, log.last_seq, snapshot), self.store.append(racing)
        )
        self.model.record([racing], [seqs])

    async def reopen(self) -> None:
        await self.store.close()
        self.store = self.make_store()
        await self.store.open()

    async def play(self, ops: Sequence[Any]) -> None:
        await self.store.open()
        try:
            await check(self.store, self.model)
            for op in ops:
                if isinstance(op, AppendOp):
                    await self.append(op)
                elif isinstance(op, ReleaseOp):
                    await self.release()
                elif isinstance(op, SyncOp):
                    self.sync(op)
                elif isinstance(op, CompactOp):
                    await self.compact(op)
                else:
                    await self.reopen()
                await check(self.store, self.model)
            # Finally compact both documents while updates may still be withheld, let
            # those arrive (pending content must now show) and restart once more.
            for doc in range(len(DOC_NAMES)):
                await self.compact(CompactOp(doc, merge=False, concurrent_edits=()))
            await self.release()
            await self.reopen()
            await check(self.store, self.model)
        finally:
            await self.store.close()


@settings(max_examples=examples(full=50, fast=15), deadline=None)
@given(ops=operations)
def test_random_operations_keep_content(backend: Backend, ops: list[Any]) -> None:
    # hypothesis cannot drive async tests or async fixtures: each example gets its own
    # event loop and its own store in a fresh directory.
    workdir = Path(tempfile.mkdtemp(prefix="store-conformance-"))
    try:
        asyncio.run(Run(backend, workdir).play(ops))
    finally:
        shutil.rmtree(workdir)


# -- plain tests --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_load_of_unknown_document_is_none(store: DocumentStore) -> None:
    assert await store.load("nobody") is None
    assert await store.history("nobody") == []
    assert await store.list() == []


@pytest.mark.asyncio
async def test_last_seq_and_docs_of_name_every_commit(store: DocumentStore) -> None:
    assert await store.last_seq() == 0
    assert await store.docs_of([1, 2, 3]) == {}
    assert await store.last_seqs(["a", "b"]) == {}
    a, b = text_updates("a1", "a2"), text_updates("b1")
    seqs = await store.append([*ups("a", a[:1]), *ups("b", b), *ups("a", a[1:])])
    assert await store.last_seq() == seqs[-1]
    assert await store.docs_of([*seqs, seqs[-1] + 1]) == dict(
        zip(seqs, ["a", "b", "a"], strict=True)
    )
    assert await store.last_seqs(["a", "b", "a", "c"]) == {"a": seqs[2], "b": seqs[1]}
    # Compaction and other documents' deletion keep both answers.
    log = await store.load("a")
    assert log is not None
    await store.compact("a", log.last_seq, snapshot_of(log.updates))
    await store.delete("b")
    assert await store.last_seq() == seqs[-1]
    assert await store.docs_of(seqs) == {seqs[0]: "a", seqs[2]: "a"}
    assert await store.last_seqs(["a", "b"]) == {"a": seqs[2]}


@pytest.mark.asyncio
async def test_load_upto_a_seq_reads_the_log_as_it_was(store: DocumentStore) -> None:
    """``load(doc, upto=seq)``: the rows with ``seq <= upto`` (a past state, as restore
    points read it); none once compaction folded the rows before ``upto`` away."""
    a, b = text_updates("a1", "a2", "a3"), text_updates("b1")
    seqs = await store.append([*ups("a", a[:1]), *ups("b", b), *ups("a", a[1:])])
    whole = await store.load("a")
    assert whole is not None and await store.load("a", upto=seqs[-1]) == whole
    early = await store.load("a", upto=seqs[2])
    assert early == StoredLog(updates=[a[0], a[1]], last_seq=seqs[2], first_seq=seqs[0])
    assert await store.load("a", upto=seqs[0] - 1) is None
    await store.compact("a", seqs[2], snapshot_of(a[:2]))
    assert await store.load("a", upto=seqs[0]) is None
    kept = await store.load("a", upto=seqs[2])
    assert kept is not None and (kept.first_seq, kept.last_seq) == (seqs[2], seqs[2])


@pytest.mark.asyncio
async def test_empty_append_returns_empty_list(store: DocumentStore) -> None:
    commits = getattr(store, "commits", None)
    assert await store.append([]) == []
    assert getattr(store, "commits", None) == commits
    assert await store.list() == []


@pytest.mark.asyncio
async def test_seqs_strictly_increase_across_documents(store: DocumentStore) -> None:
    a, b = text_updates("a1", "a2", "a3"), text_updates("b1", "b2")
    first = await store.append(ups("a", a[:1]))
    mixed = await store.append([*ups("b", b[:1]), *ups("a", a[1:2]), *ups("b", b[1:])])
    last = await store.append(ups("a", a[2:]))
    every = first + mixed + last
    assert_increasing(every)
    log_a, log_b = await store.load("a"), await store.load("b")
    assert log_a is not None and log_b is not None
    assert log_a.updates == a and log_b.updates == b
    assert (log_a.first_seq, log_a.last_seq) == (every[0], every[-1])
    assert (log_b.first_seq, log_b.last_seq) == (every[1], every[3])
    assert content(log_a.updates)["text"] == "a1a2a3"


@pytest.mark.asyncio
async def test_compact_replaces_prefix_and_keeps_later_rows(store: DocumentStore) -> None:
    updates = text_updates("one ", "two ", "three ", "four")
    seqs = await store.append(ups("doc", updates))
    await store.compact("doc", seqs[1], snapshot_of(updates[:2]))
    log = await store.load("doc")
    assert log is not None
    assert (log.first_seq, log.last_seq) == (seqs[1], seqs[3])
    assert log.updates[1:] == updates[2:] and len(log.updates) == 3
    assert content(log.updates)["text"] == "one two three four"
    # Compacting again, up to the last row, leaves a single snapshot row.
    await store.compact("doc", log.last_seq, snapshot_of(log.updates))
    log = await store.load("doc")
    assert log is not None and len(log.updates) == 1
    assert log.first_seq == log.last_seq == seqs[3]
    assert content(log.updates)["text"] == "one two three four"


@pytest.mark.asyncio
@pytest.mark.parametrize("wrong", ["other doc's seq", "missing seq", "zero", "unknown doc"])
async def test_compact_with_wrong_seq_raises_and_changes_nothing(
    store: DocumentStore, wrong: str
) -> None:
    updates = text_updates("x", "y", "z")
    seqs = await store.append(ups("doc", updates[:2]))
    other = await store.append(ups("other", text_updates("o")))
    await store.append(ups("doc", updates[2:]))
    doc, upto = {
        "other doc's seq": ("doc", other[0]),
        "missing seq": ("doc", seqs[-1] + 1000),
        "zero": ("doc", 0),
        "unknown doc": ("nobody", seqs[0]),
    }[wrong]
    before = [await store.load(n) for n in ("doc", "other", "nobody")]
    history = [await store.history(n) for n in ("doc", "other")]
    with pytest.raises(StoreError):
        await store.compact(doc, upto, b"\x00\x00")
    assert [await store.load(n) for n in ("doc", "other", "nobody")] == before
    assert [await store.history(n) for n in ("doc", "other")] == history
    # The store still works afterwards.
    assert len(await store.append(ups("doc", text_updates("w")))) == 1


@pytest.mark.asyncio
async def test_history_survives_compaction_and_keeps_origins(store: DocumentStore) -> None:
    updates = text_updates("a", "bb", "ccc")
    started = time.time()
    s1 = await store.append(ups("doc", updates[:1], origin="alice"))
    s2 = await store.append(ups("doc", updates[1:], origin="bob"))
    await store.append(ups("elsewhere", text_updates("z"), origin="carol"))
    log = await store.load("doc")
    assert log is not None
    await store.compact("doc", log.last_seq, snapshot_of(log.updates))
    history = await store.history("doc")
    assert [(h.seq, h.doc, h.origin, h.size) for h in history] == [
        (s2[1], "doc", "bob", len(updates[2])),
        (s2[0], "doc", "bob", len(updates[1])),
        (s1[0], "doc", "alice", len(updates[0])),
    ]
    assert all(started - 1 <= h.created_at <= time.time() + 1 for h in history)
    assert [h.seq for h in await store.history("doc", limit=2)] == [s2[1], s2[0]]
    assert await store.history("doc", limit=0) == []


@pytest.mark.asyncio
async def test_delete_removes_only_documents_with_the_prefix(store: DocumentStore) -> None:
    names = ["w_1/a", "w_1/b", "w_1", "wx1/c", "w%1/d", "W_1/e", "w_1x", "other", "ü/1"]
    for name in names:
        await store.append(ups(name, text_updates(name)))
    assert await store.delete("w_1/") == 2
    assert await store.list() == sorted(set(names) - {"w_1/a", "w_1/b"})
    for gone in ("w_1/a", "w_1/b"):
        assert await store.load(gone) is None
        assert await store.history(gone) == []
    for kept in ("w_1", "wx1/c", "W_1/e", "w_1x"):
        log = await store.load(kept)
        assert log is not None and content(log.updates)["text"] == kept
        assert len(await store.history(kept)) == 1
    assert await store.delete("%") == 0
    assert await store.delete("w_") == 2  # "w_1" and "w_1x"
    assert await store.delete("nothing") == 0
    assert await store.delete("ü") == 1
    assert await store.list() == ["W_1/e", "other", "w%1/d", "wx1/c"]
    assert await store.delete("") == 4
    assert await store.list() == []


@pytest.mark.asyncio
async def test_list_filters_by_prefix_and_sorts(store: DocumentStore) -> None:
    names = ["b/2", "a/1", "b/1", "b_1", "bx1", "B/1", "a/1"]
    for name in names:
        await store.append(ups(name, text_updates("t")))
    assert await store.list() == ["B/1", "a/1", "b/1", "b/2", "b_1", "bx1"]
    assert await store.list("b/") == ["b/1", "b/2"]
    assert await store.list("b_") == ["b_1"]
    assert await store.list("b%") == []
    assert await store.list("b") == ["b/1", "b/2", "b_1", "bx1"]
    assert await store.list("zzz") == []


@pytest.mark.asyncio
async def test_an_append_asked_to_go_first_commits_ahead_of_those_queued_beside_it(
    store: DocumentStore,
) -> None:
    # Ten appends queued in one turn of the loop, behind a transaction in flight, share the
    # writer's next transaction; the eighth asks to go first (a quiet wedding's under
    # overload): it commits on its own, ahead, and the others keep their order.
    commits_before = getattr(store, "commits", None)
    in_flight = await writer_in_flight(store)
    calls = [ups(f"doc{i}", text_updates(f"{i}."), origin=f"task{i}") for i in range(10)]
    results = await asyncio.gather(
        *(store.append(call, first=i == 7) for i, call in enumerate(calls))
    )
    assert await in_flight == []
    others = [seq for i, seqs in enumerate(results) if i != 7 for seq in seqs]
    assert max(results[7]) < min(others)
    assert others == sorted(others)
    if commits_before is not None:
        assert getattr(store, "commits", 0) - commits_before == 3  # in flight, first, shared
    for i, call in enumerate(calls):
        log = await store.load(f"doc{i}")
        assert log is not None and log.updates == [u.data for u in call]


@pytest.mark.asyncio
async def test_concurrent_appends_are_group_committed(
    store: DocumentStore, open_store: OpenStore
) -> None:
    commits_before = getattr(store, "commits", None)
    calls = [
        ups(f"doc{i % 5}", text_updates(*[f"{i}."] * (1 + i % 2)), origin=f"task{i}")
        for i in range(50)
    ]
    results = await asyncio.gather(*(store.append(call) for call in calls))
    every = [seq for seqs in results for seq in seqs]
    assert len(set(every)) == len(every) == sum(len(call) for call in calls)
    # Each caller got the seqs of its own rows.
    for i, (call, seqs) in enumerate(zip(calls, results, strict=True)):
        assert_increasing(seqs)
        entries = {h.seq: h for h in await store.history(call[0].doc, limit=1000)}
        assert [(entries[s].origin, entries[s].size) for s in seqs] == [
            (f"task{i}", len(u.data)) for u in call
        ]
    # Seqs follow call order: the calls were queued in the order gather started them.
    assert every == sorted(every)
    if commits_before is not None:
        assert getattr(store, "commits", 0) - commits_before < len(calls)
    await store.close()
    reopened = await open_store()
    for i in range(5):
        log = await reopened.load(f"doc{i}")
        assert log is not None
        mine = [u.data for call in calls for u in call if u.doc == f"doc{i}"]
        assert sorted(log.updates) == sorted(mine)


@pytest.mark.asyncio
async def test_close_waits_for_queued_appends(store: DocumentStore, open_store: OpenStore) -> None:
    calls = [ups("doc", text_updates(f"{i}")) for i in range(20)]
    tasks = [asyncio.create_task(store.append(call)) for call in calls]
    await asyncio.sleep(0)  # every task has queued its append
    await store.close()
    assert all(len(task.result()) == 1 for task in tasks)
    with pytest.raises(StoreError):
        await store.append(calls[0])
    reopened = await open_store()
    log = await reopened.load("doc")
    assert log is not None and len(log.updates) == 20


@pytest.mark.asyncio
async def test_reopening_keeps_everything_and_never_reuses_seqs(
    store: DocumentStore, open_store: OpenStore
) -> None:
    updates = text_updates("keep ", "me")
    kept = await store.append(ups("keep", updates, origin="alice"))
    dropped = await store.append(ups("drop", text_updates("x")))
    await store.compact("keep", kept[0], snapshot_of(updates[:1]))
    assert await store.delete("drop") == 1  # it held the highest seq
    before = (await store.load("keep"), await store.history("keep"), await store.list())
    await store.close()
    reopened = await open_store()
    after = (await reopened.load("keep"), await reopened.history("keep"), await reopened.list())
    assert after == before
    again = await reopened.append(ups("drop", text_updates("y")))
    assert again[0] > dropped[0]


@pytest.mark.asyncio
async def test_append_fails_while_locked_then_recovers(backend: Backend, tmp_path: Path) -> None:
    store = backend.factory(tmp_path, lock_timeout=0.1)()
    await store.open()
    try:
        await store.append(ups("doc", text_updates("before")))
        with backend.block_writes(tmp_path):
            results = await asyncio.gather(
                store.append(ups("doc", text_updates("lost"))),
                store.append(ups("other", text_updates("lost"))),
                store.compact("doc", 1, b"\x00\x00"),
                store.delete("doc"),
                return_exceptions=True,
            )
            assert all(isinstance(result, StoreError) for result in results), results
            first = results[0]
            assert isinstance(first, StoreError) and isinstance(first.__cause__, Exception)
            log = await store.load("doc")  # reads still work
            assert log is not None and content(log.updates)["text"] == "before"
        assert await store.load("other") is None
        seqs = await store.append(ups("doc", text_updates("after")))
        assert seqs[0] > 1
        assert await store.list() == ["doc"]
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_failed_batch_fails_every_caller_and_commits_nothing(
    backend: Backend, tmp_path: Path, store: DocumentStore
) -> None:
    with backend.fail_writes_of(tmp_path, "poison"):
        in_flight = await writer_in_flight(store)
        appends = asyncio.gather(
            store.append(ups("good", text_updates("a"))),
            store.append(ups("poison", text_updates("b"))),
            store.append(ups("good", text_updates("c"))),
            return_exceptions=True,
        )
        seen = []  # reads racing the doomed transaction must not see its rows
        while not appends.done():
            seen += [await store.load("good"), await store.list()]
        results = await appends
        assert await in_flight == []
    # The three calls were queued in one turn, behind a transaction in flight, so they
    # shared the next one.
    assert all(isinstance(result, StoreError) for result in results), results
    assert all(not read for read in seen), seen
    assert await store.load("good") is None and await store.load("poison") is None
    assert await store.history("good") == [] and await store.list() == []
    seqs = await store.append(ups("good", text_updates("d")))
    assert len(seqs) == 1
    assert await store.list() == ["good"]


@pytest.mark.asyncio
async def test_closed_store_raises_store_error(store: DocumentStore) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.load("doc")
    with pytest.raises(StoreError):
        await store.append(ups("doc", text_updates("x")))
    with pytest.raises(StoreError):
        await store.compact("doc", 1, b"")
    with pytest.raises(StoreError):
        await store.list()


@pytest.mark.asyncio
async def test_pending_content_survives_reload(store: DocumentStore, open_store: OpenStore) -> None:
    first, second = text_updates("Hello, ", "world")
    assert content([second])["text"] == ""  # pending in Yjs: invisible, yet must be kept
    await store.append([*ups("plain", [second]), *ups("compacted", [second])])
    log = await store.load("compacted")
    assert log is not None
    # merge_updates keeps pending structs (a Doc's get_update() would drop them).
    await store.compact("compacted", log.last_seq, merge_updates(*log.updates))
    await store.close()
    reopened = await open_store()
    log = await reopened.load("plain")
    assert log is not None and log.updates == [second]
    for name in ("plain", "compacted"):
        await reopened.append(ups(name, [first]))
        log = await reopened.load(name)
        assert log is not None and len(log.updates) == 2
        assert content(log.updates)["text"] == "Hello, world"


# -- durability across kill -9 (SQLite only: needs a store in another process) ------------

REPO_ROOT = str(Path(__file__).resolve().parents[2])
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from crdt_server.storage import NewUpdate, SqliteStore

    async def main(path):
        store = SqliteStore(path)
        await store.open()
        n = 0
        while True:
            batch = [NewUpdate(doc="doc", data=b"u%d" % (n + i), origin="child") for i in range(3)]
            seqs = await store.append(batch)
            n += 3
            print(" ".join(map(str, seqs)), flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.mark.asyncio
async def test_acknowledged_sqlite_appends_survive_kill_9(tmp_path: Path) -> None:
    """SQLite only: the durability of a server is its store's (PostgreSQL's is its own)."""
    path = tmp_path / "killed.sqlite3"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    acknowledged: list[int] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 60:
            line = await child.stdout.readline()
            assert line, "child exited early"
            acknowledged += [int(seq) for seq in line.split()]
    finally:
        child.send_signal(signal.SIGKILL)
        await child.communicate()
    assert child.returncode == -signal.SIGKILL
    store = SqliteStore(path)
    await store.open()
    try:
        log = await store.load("doc")
        assert log is not None
        stored = {entry.seq for entry in await store.history("doc", limit=1_000_000)}
        assert set(acknowledged) <= stored
        assert log.updates[: len(acknowledged)] == [b"u%d" % i for i in range(len(acknowledged))]
    finally:
        await store.close()


@pytest.mark.asyncio
@pytest.mark.timeout(30)
@pytest.mark.parametrize(("synchronous", "level"), [("full", 2), ("normal", 1)])
async def test_sqlite_write_connection_uses_the_sync_level_asked_for(
    tmp_path: Path, synchronous: Literal["full", "normal"], level: int
) -> None:
    store = SqliteStore(tmp_path / "sync.sqlite3", synchronous=synchronous)
    await store.open()
    try:
        # The pragma is per connection: ask the writer's own, inside a write transaction.
        seen = await store._transaction(lambda db: db.execute("PRAGMA synchronous").fetchone())
        assert seen == (level,)
        assert await store.append([NewUpdate("d", b"\x00\x00", "t")]) == [1]
    finally:
        await store.close()


# -- attribution and events ----------------------------------------------------------------


def _event(wedding: str, type_: str, doc: str | None = "guests", **data: Any) -> NewEvent:
    return NewEvent(wedding, type_, json.dumps(data), doc, sub="ada", role="planner")


@pytest.mark.asyncio
async def test_history_records_the_actor_and_pages_both_ways(store: DocumentStore) -> None:
    updates = text_updates("a", "b", "c", "d")
    seqs = await store.append(
        [
            NewUpdate("doc", u, f"c{i}", sub=f"user{i}", role="planner", client_id=100 + i)
            for i, u in enumerate(updates)
        ]
    )
    history = await store.history("doc")
    assert [(h.sub, h.role, h.client_id) for h in history] == [
        ("user3", "planner", 103),
        ("user2", "planner", 102),
        ("user1", "planner", 101),
        ("user0", "planner", 100),
    ]
    assert [h.seq for h in await store.history("doc", 2, before=seqs[2])] == seqs[1::-1]
    assert [h.seq for h in await store.history("doc", 10, after=seqs[1])] == seqs[:1:-1]


@pytest.mark.asyncio
async def test_events_commit_with_their_updates_numbered_per_wedding(
    store: DocumentStore, open_store: OpenStore
) -> None:
    a, b = text_updates("a1", "a2"), text_updates("b1")
    await store.append(
        [*ups("w1/guests", a[:1]), *ups("w2/guests", b)],
        steps=[
            store_events(
                [_event("w1", "guest.added", id="g1"), _event("w2", "guest.added", id="x")]
            )
        ],
    )
    await store.append(
        ups("w1/guests", a[1:]),
        steps=[
            store_events(
                [
                    _event("w1", "guest.rsvp_changed", id="g1"),
                    _event("w1", "guest.updated", id="g1"),
                ]
            )
        ],
    )
    events = await read_events(Gateway.of(store), "w1")
    assert [(e.seq, e.type, json.loads(e.data)) for e in events] == [
        (1, "guest.added", {"id": "g1"}),
        (2, "guest.rsvp_changed", {"id": "g1"}),
        (3, "guest.updated", {"id": "g1"}),
    ]
    assert all(
        (e.wedding, e.sub, e.role, e.doc) == ("w1", "ada", "planner", "guests") for e in events
    )
    assert [e.seq for e in await read_events(Gateway.of(store), "w2")] == [1]
    assert await last_event_seq(Gateway.of(store), "w1") == 3
    assert await last_event_seq(Gateway.of(store), "nobody") == 0
    await store.close()
    reopened = await open_store()
    assert [e.seq for e in await read_events(Gateway.of(reopened), "w1", after=1, limit=1)] == [2]
    added = await add_events(Gateway.of(reopened), [_event("w1", "custom.note", None, text="hi")])
    assert added.first and [e.seq for e in added.events] == [4]


@pytest.mark.asyncio
async def test_event_filters_by_type_pattern_and_readable_documents(store: DocumentStore) -> None:
    await add_events(
        Gateway.of(store),
        [
            _event("w1", "guest.added"),
            _event("w1", "budget.payment_recorded", "budget"),
            _event("w1", "budget.total_changed", "budget"),
            _event("w1", "day.vendor_arrived", None),
            _event("w1", "guest_like.thing", "guests"),
        ],
    )

    async def types(**where: Any) -> list[str]:
        return [
            e.type for e in await read_events(Gateway.of(store), "w1", where=EventFilter(**where))
        ]

    assert await types(types=("guest.*",)) == ["guest.added"]
    assert await types(types=("guest.*", "budget.total_changed")) == [
        "guest.added",
        "budget.total_changed",
    ]
    assert await types(docs=frozenset({"guests"})) == [
        "guest.added",
        "day.vendor_arrived",
        "guest_like.thing",
    ]
    assert await types(types=("budget.*",), docs=frozenset({"guests", "timeline"})) == []


@pytest.mark.asyncio
async def test_an_idempotency_key_stores_once(store: DocumentStore) -> None:
    once = Once("w1:ada:events", "key-1", "fp-a", time.time() + 60)
    first = await add_events(Gateway.of(store), [_event("w1", "custom.a")], once=once)
    again = await add_events(Gateway.of(store), [_event("w1", "custom.a")], once=once)
    assert first.first and not again.first
    assert again.fingerprint == "fp-a"
    assert [e.seq for e in again.events] == [e.seq for e in first.events] == [1]
    assert [e.seq for e in await read_events(Gateway.of(store), "w1")] == [1]
    expired = Once("w1:ada:events", "key-2", "fp", time.time() - 1)
    await add_events(Gateway.of(store), [_event("w1", "custom.b")], once=expired)
    assert (await add_events(Gateway.of(store), [_event("w1", "custom.b")], once=expired)).first


@pytest.mark.asyncio
async def test_events_with_an_audience_reach_only_the_viewers_it_names(
    store: DocumentStore,
) -> None:
    await add_events(
        Gateway.of(store),
        [
            NewEvent("w_1", "thread.created", "{}", audience=audience_of(["flo", 'a"b'])),
            NewEvent("w_1", "guest.added", "{}", "guests"),
            NewEvent("w_1", "thread.created", "{}", "seating", audience=audience_of(["dj"])),
        ],
    )

    async def seqs(where: EventFilter) -> list[int]:
        return [e.seq for e in await read_events(Gateway.of(store), "w_1", where=where)]

    assert await seqs(EventFilter()) == [1, 2, 3]  # no viewer: every audience
    assert await seqs(EventFilter(viewer="flo")) == [1, 2]
    assert await seqs(EventFilter(viewer='a"b')) == [1, 2]
    assert await seqs(EventFilter(viewer="a")) == [2]  # a prefix of a name is not the name
    assert await seqs(EventFilter(viewer="dj", docs=frozenset({"guests"}))) == [2]
    assert await seqs(EventFilter(viewer="dj")) == [2, 3]
    stored = await read_events(Gateway.of(store), "w_1", after=2)
    assert stored[0].audience == '["dj"]'


@pytest.mark.asyncio
async def test_purging_old_events_never_reuses_their_seqs(store: DocumentStore) -> None:
    old = NewEvent("w1", "custom.old", "{}", at=time.time() - 100)
    await add_events(Gateway.of(store), [old, old])
    assert await purge_events(Gateway.of(store), time.time() - 50) == 2
    assert await read_events(Gateway.of(store), "w1") == []
    added = await add_events(Gateway.of(store), [_event("w1", "custom.new")])
    assert [e.seq for e in added.events] == [3]


@pytest.mark.asyncio
async def test_erasing_an_entry_deletes_the_events_naming_it_or_its_paths(
    store: DocumentStore,
) -> None:
    def compact(wedding: str, type_: str, **data: Any) -> NewEvent:
        text = json.dumps(data, separators=(",", ":"))  # as the server stores event data
        return NewEvent(wedding, type_, text, "guests", sub="ada", role="planner")

    await add_events(
        Gateway.of(store),
        [
            compact("w1", "guest.added", guest_id="g1"),
            compact("w1", "conflict.detected", id="cw:1", paths=["guests/guests/g1"]),
            compact("w1", "conflict.detected", id="x", paths=["guests/guests/g1/contact"]),
            compact("w1", "conflict.detected", id="cw:2", paths=["guests/guests/g10"]),
            compact("w1", "guest.added", guest_id="g2"),
            compact("w2", "guest.added", guest_id="g1"),
        ],
    )
    paths = ("guests/guests/g1", "seating/assignments/g1")
    assert await erase_entity_events(Gateway.of(store), "w1", "g1", paths) == 3
    left = [json.loads(e.data) for e in await read_events(Gateway.of(store), "w1")]
    assert left == [{"id": "cw:2", "paths": ["guests/guests/g10"]}, {"guest_id": "g2"}]
    assert len(await read_events(Gateway.of(store), "w2")) == 1
    # With ``sub``: also what the erased person did (a guest's note from the RSVP page).
    by_guest = NewEvent("w1", "guest.household_updated", '{"id":"h1"}', "guests", sub="guest:g2")
    await add_events(Gateway.of(store), [by_guest])
    assert await erase_entity_events(Gateway.of(store), "w1", "g2", (), sub="guest:g2") == 2
    assert [json.loads(e.data) for e in await read_events(Gateway.of(store), "w1")] == [
        {"id": "cw:2", "paths": ["guests/guests/g10"]}
    ]


@pytest.mark.asyncio
async def test_deleting_a_wedding_deletes_its_events(store: DocumentStore) -> None:
    await store.append(
        ups("w1/guests", text_updates("a")), steps=[store_events([_event("w1", "guest.added")])]
    )
    await add_events(Gateway.of(store), [_event("w10", "guest.added")])
    await store.delete("w1/")
    assert await read_events(Gateway.of(store), "w1") == []
    assert await last_event_seq(Gateway.of(store), "w1") == 0
    assert [e.wedding for e in await read_events(Gateway.of(store), "w10")] == ["w10"]


# -- feature tables ----------------------------------------------------------------------

NOTES = Schema(
    "notes",
    sqlite=(
        "CREATE TABLE IF NOT EXISTS notes (wedding TEXT NOT NULL, id TEXT NOT NULL,"
        " body TEXT NOT NULL, PRIMARY KEY (wedding, id))",
    ),
    postgres=(
        "CREATE TABLE IF NOT EXISTS {s}.notes (wedding TEXT NOT NULL, id TEXT NOT NULL,"
        " body TEXT NOT NULL, PRIMARY KEY (wedding, id))",
    ),
    wedding_tables=("notes",),
)


async def put_note(store: DocumentStore, wedding: str, note: str, event: NewEvent) -> list[int]:
    """Write a note row and an event in one transaction, through the SQL gateway (the
    events feature's step); the seqs of the events stored (none for an erased wedding)."""

    def tx() -> Tx[list[StoredEvent]]:
        yield Sql("INSERT INTO {t}notes VALUES (?, ?, ?)", (wedding, note, "secret"))
        return (yield from store_events([event]))

    stored = await Gateway.of(store).run(tx())
    return [e.seq for e in stored]


async def notes(store: DocumentStore) -> list[tuple[str, str]]:
    if isinstance(store, SqliteStore):
        rows = await store.read("SELECT wedding, id FROM notes ORDER BY wedding, id")
    else:
        assert isinstance(store, PostgresStore)
        rows = await store.fetch(f"SELECT wedding, id FROM {store.schema}.notes ORDER BY 1, 2")
    return [(str(r[0]), str(r[1])) for r in rows]


@pytest.mark.asyncio
async def test_a_feature_schema_writes_with_events_and_is_erased_with_its_wedding(
    store: DocumentStore, open_store: OpenStore
) -> None:
    await store.install(NOTES)
    await store.install(NOTES)  # a no-op the second time
    seq = await put_note(store, "w_1", "n1", NewEvent("w_1", "note.added", "{}"))
    await put_note(store, "w_2", "n1", NewEvent("w_2", "note.added", "{}"))
    assert seq == [1] and await last_event_seq(Gateway.of(store), "w_1") == 1
    assert await notes(store) == [("w_1", "n1"), ("w_2", "n1")]
    await store.erase_wedding("w_1")
    assert await notes(store) == [("w_2", "n1")]
    assert await last_event_seq(Gateway.of(store), "w_1") == 0
    # A late writer (another process that has not heard yet) stores nothing for it.
    assert await put_note(store, "w_1", "n2", NewEvent("w_1", "note.added", "{}")) == []
    assert await notes(store) == [("w_2", "n1")]
    assert await last_event_seq(Gateway.of(store), "w_1") == 0
    assert await read_events(Gateway.of(store), "w_1") == []
    # The rows outlive a restart; a new process installs again (IF NOT EXISTS).
    await store.close()
    reopened = await open_store()
    await reopened.install(NOTES)
    assert await notes(reopened) == [("w_2", "n1")]


# -- erasure and revocations ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_erase_wedding_deletes_its_rows_and_tombstones_it_for_good(
    store: DocumentStore, open_store: OpenStore
) -> None:
    names = ["w_1/guests", "w_1/seating", "w_1/conflicts", "w_1x/guests", "wx1/guests", "w_2/a"]
    for name in names:
        await store.append(ups(name, text_updates(name)))
    erased = await store.erase_wedding("w_1")
    assert erased.documents == 3 and erased.scrubbed
    assert await store.list() == ["w_1x/guests", "w_2/a", "wx1/guests"]
    for gone in names[:3]:
        assert await store.load(gone) is None and await store.history(gone) == []
    assert set(await store.tombstones()) == {"w_1"}
    # Nothing re-creates it: appends for its documents are not stored, others are.
    seqs = await store.append(ups("w_1/guests", text_updates("again")) + ups("w_2/a", [b"x"]))
    assert len(seqs) == 2
    assert await store.load("w_1/guests") is None and await store.history("w_1/guests") == []
    log = await store.load("w_2/a")
    assert log is not None and len(log.updates) == 2
    # The tombstone survives a restart, and only lifting it lets the id be used again.
    await store.close()
    reopened = await open_store()
    assert set(await reopened.tombstones()) == {"w_1"}
    assert await reopened.scrub()
    assert await reopened.lift_tombstone("w_1")
    assert not await reopened.lift_tombstone("w_1")
    await reopened.append(ups("w_1/guests", text_updates("new")))
    log = await reopened.load("w_1/guests")
    assert log is not None and content(log.updates)["text"] == "new"
    assert await reopened.tombstones() == {}


@pytest.mark.asyncio
async def test_revocations_are_durable_keep_the_latest_and_are_forgotten_when_stale(
    store: DocumentStore, open_store: OpenStore
) -> None:
    assert await store.revocations() == []
    await store.revoke(Revocation("eve", None, 1000.0), forget_before=0)
    await store.revoke(Revocation("eve", "w1", 1500.0), forget_before=0)
    await store.revoke(Revocation("eve", None, 900.0), forget_before=0)  # older: kept 1000
    await store.revoke(Revocation("bob", None, 2000.0), forget_before=0)
    await store.close()
    reopened = await open_store()
    assert await reopened.revocations() == [
        Revocation("eve", None, 1000.0),
        Revocation("eve", "w1", 1500.0),
        Revocation("bob", None, 2000.0),
    ]
    await reopened.revoke(Revocation("bob", None, 2500.0), forget_before=1200.0)
    assert await reopened.revocations() == [
        Revocation("eve", "w1", 1500.0),
        Revocation("bob", None, 2500.0),
    ]


# -- restore points (crdt_server.features.versions.tables) ---------------------------


@pytest.mark.asyncio
async def test_restore_points_outlive_compaction_and_go_with_their_wedding(
    store: DocumentStore, open_store: OpenStore
) -> None:
    from crdt_server.actor import Actor
    from crdt_server.features import install_tables
    from crdt_server.features import versions as versions_feature
    from crdt_server.features.versions.tables import VersionPoint, VersionStore

    await install_tables(store, [versions_feature.FEATURE])
    versions = VersionStore(store)
    updates = text_updates("a", "b", "c")
    seqs = await store.append(
        [NewUpdate("w_1/guests", u, "c1", sub="ada", role="planner") for u in updates]
    )
    first = VersionPoint("w_1/guests", seqs[0], 1000.0, (Actor("ada", "planner"),))
    assert await versions.add("w_1", first, updates[0])
    assert not await versions.add("w_1", first, b"again")  # one point per seq
    await versions.add("w_1", VersionPoint("w_1/guests", seqs[2], 2000.0, ()), snapshot_of(updates))
    await versions.add("w_2", VersionPoint("w_2/guests", 7, 3000.0, ()), b"other")
    assert [p.seq for p in await versions.points("w_1/guests")] == [seqs[2], seqs[0]]
    assert await versions.points("w_1/guests", before=seqs[2]) == [first]
    assert await versions.actors_between("w_1/guests", 0, seqs[2]) == [Actor("ada", "planner")]
    log = await versions.log_upto("w_1/guests", seqs[1])
    assert log == StoredLog(updates[:2], last_seq=seqs[1], first_seq=seqs[0])
    # compaction folds the log; the points stay
    await store.compact("w_1/guests", seqs[1], snapshot_of(updates[:2]))
    log = await versions.log_upto("w_1/guests", seqs[1])
    assert log is not None and (log.first_seq, log.last_seq, len(log.updates)) == (seqs[1],) * 2 + (
        1,
    )
    assert await versions.log_upto("w_1/guests", seqs[0]) is None
    state = await versions.state("w_1/guests", seqs[1])
    assert state is not None and state.seq == seqs[0] and content([state.data])["text"] == "a"
    assert [p.seq for p in await versions.older_than(2500.0)] == sorted([seqs[0], seqs[2]])
    await versions.delete([first])
    assert [p.seq for p in await versions.points("w_1/guests")] == [seqs[2]]
    # erased with the wedding, and the rows outlive a restart
    await store.erase_wedding("w_1")
    assert await versions.points("w_1/guests") == []
    await store.close()
    again = await open_store()
    await install_tables(again, [versions_feature.FEATURE])
    reopened = VersionStore(again)
    assert [p.seq for p in await reopened.points("w_2/guests")] == [7]
