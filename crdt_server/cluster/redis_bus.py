"""The Redis bus: rooms shared by several processes (or hosts) on one store.

Pub/sub channels carry committed updates (with their store sequence numbers), accepted
presence, admin events and stateless messages; one more carries each process's heartbeat
(the newest seq it committed), and another which rooms each process has open and what it
committed (:class:`~crdt_server.cluster.messages.Interest`,
:class:`~crdt_server.cluster.messages.Commits`).

A room's committed updates are published only while another process has the room open:
with one worker per wedding, nothing of a wedding's editing crosses the bus. Every process
still hears of every seq, listed by room a few times a second. Pub/sub is at-most-once,
so every process tracks the store's sequence numbers: a seq that was committed somewhere
but never heard of (a dropped message, a publisher that died between commit and publish)
is a gap, and the rooms it belongs to are caught up from the store. A room open here whose
seq is listed but whose updates never came (its publisher did not know yet that this
process had it open) is caught up from the store too, and this process says again that it
has the room open. If the connection to Redis is lost, local clients keep being served;
the bus reconnects with backoff, asks every process which rooms it has open, and catches
every loaded room up. A lost Redis is noticed by a health ping within a second
(:mod:`~crdt_server.cluster.health`), not at the next publish.

A process of the release before this one (a rolling restart) never says which rooms it
has open, so it is sent no updates: it learns of each commit from the heartbeats, as a
gap, and catches the room up from the store (``deploy/README.md``).

Only this module knows redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as redis
from redis.exceptions import RedisError

from crdt_server.cluster.bus import BusHandler
from crdt_server.cluster.health import BusHealth
from crdt_server.cluster.messages import (
    AwarenessMessage,
    Commits,
    Interest,
    StatelessMessage,
    UpdatesMessage,
    read_rooms_message,
)
from crdt_server.errors import ProtocolError
from crdt_server.storage import StoreError

__all__ = ["RedisBus"]


_LEASE_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
"""A lease taken if free, renewed if this process (``ARGV[1]``) holds it, else left."""
log = logging.getLogger("crdt_server.cluster.redis_bus")

_UPDATES = "crdt:updates"
_AWARENESS = "crdt:awareness"
_EVENTS = "crdt:events"
_HEARTBEAT = "crdt:heartbeat"
_STATELESS = "crdt:stateless"
"""New in the release after typed bus messages: the release before it never subscribes to
this channel, so it never hears a stateless message (see :mod:`~crdt_server.cluster.messages`)."""
_ROOMS = "crdt:rooms"
"""New in the release that publishes a room's updates only where the room is open: which
rooms each process has open, and what it committed. The release before never hears it."""
_PIPELINE = 256
"""The most queued messages published in one round trip (a pipeline, in order)."""
_MAX_GAP = 10_000
"""More missing seqs than this: cheaper to catch every room up than to look them up."""


class _SeqTracker:
    """Which store seqs this process has heard of, and which are missing."""

    def __init__(self) -> None:
        self.reset()

    def reset(self, committed: int | None = None) -> None:
        """Start over, having heard of everything up to ``committed`` (the store's newest)."""
        self.contiguous: int | None = committed
        self.ahead: set[int] = set()
        self.target = committed or 0
        self.gap_since: float | None = None

    def saw(self, seqs: Sequence[int], now: float) -> None:
        if not seqs:
            return
        if self.contiguous is None:
            self.contiguous = min(seqs) - 1
        for seq in seqs:
            if seq > self.contiguous:
                self.ahead.add(seq)
        self.exists(max(seqs), now)
        self._advance(now)

    def heard(self, seq: int) -> bool:
        """Whether ``seq`` was heard of (or given up on as a gap already)."""
        return self.contiguous is None or seq <= self.contiguous or seq in self.ahead

    def exists(self, seq: int, now: float) -> None:
        """A heartbeat: ``seq`` was committed somewhere."""
        if self.contiguous is None:
            self.contiguous = seq
            return
        if seq > self.target:
            self.target = seq
        self._advance(now)

    def _advance(self, now: float) -> None:
        assert self.contiguous is not None
        while self.contiguous + 1 in self.ahead:
            self.contiguous += 1
            self.ahead.discard(self.contiguous)
        if self.contiguous >= self.target:
            self.gap_since = None
        elif self.gap_since is None:
            self.gap_since = now

    def overdue(self, now: float, grace: float) -> list[int] | None:
        """Seqs missing for longer than ``grace``; marks them handled. ``None``: no gap."""
        if self.gap_since is None or now - self.gap_since < grace or self.contiguous is None:
            return None
        missing = [s for s in range(self.contiguous + 1, self.target + 1) if s not in self.ahead]
        self.contiguous = self.target
        self.ahead = {s for s in self.ahead if s > self.target}
        self.gap_since = None
        return missing


class RedisBus:
    """A :class:`~crdt_server.cluster.bus.Bus` on Redis pub/sub (redis-py asyncio)."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        gap_grace: float = 0.5,
        heartbeat: float = 1.0,
        announce: float = 0.1,
        queue_limit: int = 100_000,
    ) -> None:
        self.process_id = uuid.uuid4().hex
        self._url = url
        self._gap_grace = gap_grace
        self._heartbeat = heartbeat
        self._announce = announce
        self._peer_timeout = 5 * heartbeat
        """A process not heard of for this long is gone: its rooms are no longer open."""
        self._redis: redis.Redis = redis.Redis.from_url(url, socket_timeout=5)
        self._health = BusHealth(self._redis.ping)
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_limit)
        self._tracker = _SeqTracker()
        self._handler: BusHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = False
        self._publish_error: str | None = None
        self._own_max_seq = 0
        self._watched: set[str] = set()
        """The rooms open here (loaded or loading)."""
        self._opening: set[str] = set()
        self._closing: set[str] = set()
        """Rooms opened or closed in this turn, told at its end in one message."""
        self._remote: dict[str, set[str]] = {}
        """Room -> the other processes that have it open."""
        self._peers: dict[str, tuple[float, set[str]]] = {}
        """Another process -> when it was last heard of, and the rooms it has open."""
        self._committed: dict[str, list[int]] = {}
        """What this process committed since its last :class:`Commits`, by room."""
        self._telling = False
        self._repairs: set[asyncio.Task[None]] = set()
        self.dropped = 0
        """Messages not published because the outbox was full (others repair from the store)."""
        self.missed = 0
        """Times a room open here was caught up because its updates were never sent here."""

    @property
    def losses(self) -> int:
        return self._health.losses

    @property
    def status(self) -> str:
        if self._health.lost is not None:
            return f"lost: {self._health.lost}"
        if not self._subscribed:
            return "degraded: not subscribed to Redis"
        if self._publish_error:
            return f"degraded: {self._publish_error}"
        return "ok"

    async def start(self, handler: BusHandler) -> None:
        self._handler = handler
        subscribed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._subscribe_loop(subscribed), name="bus-subscribe"),
            asyncio.create_task(self._publish_loop(), name="bus-publish"),
            asyncio.create_task(self._tick_loop(), name="bus-tick"),
            asyncio.create_task(self._health.run(), name="bus-health"),
        ]
        # Start serving even if Redis is down; but give it a moment to come up first.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await subscribed.wait()

    async def close(self) -> None:
        # Say what was committed and that no room is open here any more, flush what is
        # queued (bounded), then stop.
        self._announce_commits()
        self._opening.clear()
        self._closing = set(self._watched)
        self._watched.clear()
        self._tell_interest()
        for repair in self._repairs:
            repair.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._outbox.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._redis.aclose()

    # -- publishing -------------------------------------------------------------------

    def _enqueue(self, channel: str, data: bytes) -> None:
        try:
            self._outbox.put_nowait((channel, data))
        except asyncio.QueueFull:
            self.dropped += 1

    def publish_updates(self, doc: str, seqs: Sequence[int], updates: Sequence[bytes]) -> None:
        if seqs:
            self._own_max_seq = max(self._own_max_seq, max(seqs))
            self._tracker.saw(seqs, time.monotonic())  # heard here, published or not
            self._committed.setdefault(doc, []).extend(seqs)
        if self._remote.get(doc):
            self._enqueue(_UPDATES, UpdatesMessage(self.process_id, doc, seqs, updates).encode())

    def watch(self, doc: str) -> None:
        if doc not in self._watched:
            self._watched.add(doc)
            self._closing.discard(doc)
            self._opening.add(doc)
            self._tell_soon()

    def unwatch(self, doc: str) -> None:
        if doc in self._watched:
            self._watched.discard(doc)
            self._opening.discard(doc)
            self._closing.add(doc)
            self._tell_soon()

    def open_elsewhere(self, name: str) -> bool:
        return bool(self._remote.get(name))

    def _tell_soon(self) -> None:
        if not self._telling:
            self._telling = True
            asyncio.get_running_loop().call_soon(self._tell_interest)

    def _tell_interest(self) -> None:
        self._telling = False
        if self._opening or self._closing:
            opened, closed = sorted(self._opening), sorted(self._closing)
            self._opening.clear()
            self._closing.clear()
            self._send_rooms(Interest(self.process_id, opened, closed))

    def _send_rooms(self, message: Interest | Commits) -> None:
        self._enqueue(_ROOMS, msgspec.msgpack.encode(message))

    def publish_awareness(self, doc: str, payload: bytes) -> None:
        self._enqueue(_AWARENESS, AwarenessMessage(self.process_id, doc, payload).encode())

    def publish_stateless(self, room: str, text: str | Mapping[str, str]) -> None:
        if isinstance(text, str):
            message = StatelessMessage(self.process_id, room, text=text)
        else:
            message = StatelessMessage(self.process_id, room, by_role=dict(text))
        self._enqueue(_STATELESS, message.encode())

    def publish_event(self, event: dict[str, Any]) -> None:
        self._enqueue(_EVENTS, json.dumps({**event, "origin": self.process_id}).encode())

    async def _publish_loop(self) -> None:
        backoff = 0.05
        outbox = self._outbox
        while True:
            batch = [await outbox.get()]
            # What else is queued goes in the same round trip: a commit of several rooms
            # publishes their updates and their events' wake-ups in one turn, and one
            # PUBLISH at a time cost about 3x the CPU per message of a pipeline of 10.
            while len(batch) < _PIPELINE and not outbox.empty():
                batch.append(outbox.get_nowait())
            while True:
                try:
                    if len(batch) == 1:
                        await self._redis.publish(*batch[0])
                    else:
                        pipe = self._redis.pipeline(transaction=False)
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                    self._publish_error = None
                    backoff = 0.05
                    for _ in batch:
                        outbox.task_done()
                    break
                except (RedisError, OSError) as exc:
                    self._health.suspect()
                    if self._publish_error is None and self._health.lost is None:
                        log.warning("publishing on Redis failed (%s); retrying", exc)
                    self._publish_error = f"publish failed: {exc}"
                    await asyncio.sleep(backoff)
                    backoff = min(2.0, backoff * 2)

    async def try_lease(self, name: str, seconds: float) -> bool:
        key = f"crdt:lease:{name}"
        try:
            # One script, so that the read of the holder and the renewal are one step: a
            # lease that lapsed between them is never renewed for a process that lost it.
            held = await self._redis.eval(
                _LEASE_SCRIPT, 1, key, self.process_id, int(seconds * 1000)
            )
            return bool(held)
        except (RedisError, OSError):
            return False  # unsure who holds it: do not act

    # -- receiving --------------------------------------------------------------------

    async def _subscribe_loop(self, subscribed: asyncio.Event) -> None:
        backoff = 0.1
        first = True
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(
                    _UPDATES, _AWARENESS, _EVENTS, _HEARTBEAT, _STATELESS, _ROOMS
                )
                assert self._handler is not None
                # Subscribed first, then read the store's newest seq: every later commit
                # is either heard of or detected as a gap.
                self._tracker.reset(await self._handler.committed_seq())
                self._subscribed = True
                subscribed.set()
                # Which rooms are open where: ours to everyone, theirs to us.
                self._send_rooms(Interest(self.process_id, sorted(self._watched), ask=True))
                backoff = 0.1
                if not first:
                    log.info(
                        "subscribed to the Redis bus again; catching every room up from the store"
                    )
                    await self._handler.on_reconnect()
                elif self._watched:
                    # Rooms loaded before the first subscription (a feature's start reads
                    # rooms: the notes feature closes the edit sessions a crash left open)
                    # missed what was committed elsewhere between their load and the seq
                    # just read, which counts as heard: catch them up from the store.
                    log.info(
                        "%d room(s) were loaded before the bus was subscribed; catching them up",
                        len(self._watched),
                    )
                    await self._handler.on_missed(sorted(self._watched))
                first = False
                while True:
                    if self._health.lost is not None:
                        # What was published meanwhile may never come: subscribe again.
                        raise ConnectionError("the health ping found the bus lost")
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.25)
                    if message is not None:
                        self._dispatch(message["channel"].decode(), message["data"])
            except (RedisError, OSError, StoreError) as exc:
                # The health ping says lost and back, once each (this may be Redis gone).
                self._health.suspect()
                log.debug("the Redis subscription ended (%s)", exc)
                self._subscribed = False
                first = False
                await asyncio.sleep(0.05)  # the ping it asked for first
                if self._health.lost is not None:
                    await self._health.back.wait()  # then at once
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(5.0, backoff * 2)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _dispatch(self, channel: str, data: bytes) -> None:
        handler = self._handler
        assert handler is not None
        now = time.monotonic()
        try:
            if channel == _UPDATES:
                updates = UpdatesMessage.decode(data)
                self._tracker.saw(updates.seqs, now)
                if updates.origin != self.process_id:
                    handler.on_updates(updates.doc, updates.seqs, updates.updates)
            elif channel == _AWARENESS:
                awareness = AwarenessMessage.decode(data)
                if awareness.origin != self.process_id:
                    handler.on_awareness(awareness.doc, awareness.origin, awareness.payload)
            elif channel == _STATELESS:
                stateless = StatelessMessage.decode(data)
                if stateless.origin != self.process_id:
                    text = stateless.text if stateless.text is not None else stateless.by_role
                    handler.on_stateless(stateless.room, text)
            elif channel == _ROOMS:
                self._heard_rooms(read_rooms_message(data), now)
            elif channel == _HEARTBEAT:
                self._tracker.exists(int(data), now)
            elif channel == _EVENTS:
                event = json.loads(data)
                if isinstance(event, dict) and event.get("origin") != self.process_id:
                    handler.on_event(event)
        except (ProtocolError, ValueError) as exc:
            log.error("ignoring a malformed message on %s: %s", channel, exc)

    def _heard_rooms(self, message: Interest | Commits, now: float) -> None:
        origin = message.origin
        if origin == self.process_id:
            return
        _, rooms = self._peers.get(origin) or (now, set())
        self._peers[origin] = (now, rooms)
        if isinstance(message, Interest):
            for name in message.opened:
                processes = self._remote.setdefault(name, set())
                if origin not in processes:
                    processes.add(origin)
                    if "/" not in name:  # a topic, not a room
                        assert self._handler is not None
                        self._handler.on_opened(name)
            rooms.update(message.opened)
            for doc in message.closed:
                self._lost_interest(doc, origin)
            rooms.difference_update(message.closed)
            if message.ask and self._watched:
                self._send_rooms(Interest(self.process_id, sorted(self._watched)))
            return
        tracker = self._tracker
        missed = [
            doc
            for doc, seqs in message.seqs.items()
            if doc in self._watched and not all(tracker.heard(seq) for seq in seqs)
        ]
        for seqs in message.seqs.values():
            tracker.saw(seqs, now)
        tracker.exists(message.newest, now)
        if missed:
            self._repair(missed)

    def _lost_interest(self, doc: str, origin: str) -> None:
        processes = self._remote.get(doc)
        if processes is not None:
            processes.discard(origin)
            if not processes:
                del self._remote[doc]

    def _repair(self, docs: list[str]) -> None:
        """Rooms open here whose updates were committed elsewhere and never sent here:
        say again that they are open here, and catch them up from the store."""
        self.missed += 1
        log.debug("updates of %d open room(s) were not sent here; catching up", len(docs))
        self._send_rooms(Interest(self.process_id, docs))
        handler = self._handler
        assert handler is not None
        task = asyncio.create_task(handler.on_missed(docs), name="bus-missed")
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    def _announce_commits(self) -> None:
        committed, self._committed = self._committed, {}
        self._send_rooms(Commits(self.process_id, self._own_max_seq, committed))

    def _forget_silent(self, now: float) -> None:
        for origin, (seen, rooms) in list(self._peers.items()):
            if now - seen > self._peer_timeout:
                del self._peers[origin]
                for doc in rooms:
                    self._lost_interest(doc, origin)

    async def _tick_loop(self) -> None:
        """What was committed and heartbeats out; overdue gaps repaired."""
        last_beat = 0.0
        while True:
            await asyncio.sleep(min(self._announce, self._gap_grace / 2, self._heartbeat / 2))
            now = time.monotonic()
            beat = now - last_beat >= self._heartbeat
            if self._committed or beat:
                self._announce_commits()
            if beat:
                last_beat = now
                if self._own_max_seq:  # the release before this one reads only this one
                    self._enqueue(_HEARTBEAT, str(self._own_max_seq).encode())
                self._forget_silent(now)
            missing = self._tracker.overdue(now, self._gap_grace)
            if not missing:
                continue
            handler = self._handler
            assert handler is not None
            log.warning(
                "heard of %d seq(s) never received; catching up from the store", len(missing)
            )
            try:
                if len(missing) > _MAX_GAP:
                    await handler.on_reconnect()
                else:
                    await handler.on_gap(missing)
            except Exception:
                log.exception("repairing a gap failed; catching every room up instead")
                await handler.on_reconnect()
