"""Web Push: each member's browser subscriptions, and the push outbox that follows the
notifications inbox.

Whatever notifies someone writes an inbox row in its own transaction (the notifications
feature). This extension follows the inbox in id order (a cursor in the store): each
notice that pushes (a mention, an urgent message, an emergency, a reminder of a task or a
payment falling due, as the person's settings say) becomes one ``push_outbox`` row per
subscription of that person, in one transaction with the cursor's move, so a notice is
queued once, and durably, even across a crash (at least once: the rows are unique by
notice and subscription). Rows are claimed in lane
order (emergency, then urgent, then the rest; oldest first within a lane) with a lease,
sent, and retried on ``CRDT_SERVER_PUSH_RETRY_SCHEDULE``; a 404 or 410 from the push
service removes the subscription. Quiet hours hold what is not an emergency until they
end. What a notice not about a thread says (a reminder: overdue, due today or due in so
many days) comes from the feature that made it (``Notifications.tell``).

A subscription belongs to the device session that registered it (the token's ``sid``):
it goes when that session ends (signed out, revoked, idle), when its member is revoked or
erased, and with its wedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from crdt_server import clock
from crdt_server.auth.principals import Revocations
from crdt_server.core.hooks import Core, Extension
from crdt_server.errors import Impossible, NotFound
from crdt_server.features.notifications import Notice, Notifications
from crdt_server.features.people import People
from crdt_server.features.push.domain import Payload, VapidKey, quiet_until
from crdt_server.features.push.service import (
    check_endpoint,
    push_once,
    topic_of,
)
from crdt_server.features.push.settings import PushSettings
from crdt_server.features.push.tables import (
    SUBSCRIPTION_COLUMNS,
    Claimed,
    Count,
    IdRow,
    LastId,
    Prefs,
    SubscriptionRow,
    erase_member,
    remove_subscriptions,
)
from crdt_server.features.webhooks import Senders, SendFailed, UnsafeTarget
from crdt_server.storage import Gateway, StoreError
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = ["MAX_SUBSCRIPTIONS", "Push"]

log = logging.getLogger("crdt_server.push")

MAX_SUBSCRIPTIONS = 10
"""Subscriptions one member of a wedding may have."""
CLAIM_SECONDS = 60.0
POLL_SECONDS = 1.0
"""How often the inbox and the outbox are looked at without a wake-up."""
BATCH = 50
"""Messages claimed (and sent concurrently) at once."""
SCAN = 200
"""Inbox rows read at once."""
SETTLE_SECONDS = 30.0
"""On PostgreSQL, ids are not committed in order: the cursor stays behind inbox rows
younger than this, so a late commit is still seen (the unique key drops the repeat)."""
KEEP_DONE_SECONDS = 3600.0
EMERGENCY_REASONS = frozenset({"emergency", "emergency_unacknowledged"})
REMINDER_REASONS = frozenset({"task.due", "payment_due"})
"""The reminders the tasks and payments features write when something falls due."""
LANES = {"emergency": 2, "urgent": 1}


def kind_of(notice: Notice) -> str | None:
    """What a notice is to push (``emergency``, ``urgent``, ``mention``, ``reminder``), or
    ``None``."""
    if notice.reason in EMERGENCY_REASONS or notice.priority == "emergency":
        return "emergency"
    if notice.priority == "urgent":
        return "urgent"
    if notice.reason == "mention":
        return "mention"
    if notice.reason in REMINDER_REASONS:
        return "reminder"
    return None


def _wanted(kind: str, prefs: Prefs) -> bool:
    wants = {"emergency": prefs.emergencies, "urgent": prefs.urgent, "reminder": prefs.reminders}
    return bool(wants.get(kind, prefs.mentions))


class Push(Extension):
    """See the module docstring."""

    name = "push"

    def __init__(
        self,
        core: Core,
        key: VapidKey,
        inbox: Notifications,
        people: People,
        revocations: Revocations,
    ) -> None:
        """``key``: the VAPID key (:func:`keep_key`, read when the feature is built)."""
        self._inbox = inbox
        self._people = people
        self._revocations = revocations
        self.db = Gateway.of(core.store)
        self.settings = core.settings.fragment(PushSettings)
        self.key = key
        self._senders: Senders | None = None
        self._task: asyncio.Task[None] | None = None
        self._ended: set[str] = set()
        self.wake = asyncio.Event()
        self.sent = 0
        """Messages the push services accepted from this process (tests, metrics)."""

    # -- hooks ---------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        settings = self.settings
        if settings.push_allow_private:
            log.warning(
                "CRDT_SERVER_PUSH_ALLOW_PRIVATE=true: push endpoints may be loopback, private"
                " and plain http addresses. FOR TESTS ONLY: never in production."
            )
        self._senders = Senders(
            timeout=settings.push_timeout_seconds,
            allow_private=settings.push_allow_private,
            max_connections=20,
        )
        last = await self._inbox.last_notice()
        await self.db.run(_start_cursor(last))
        self._task = asyncio.create_task(self._run(), name="push")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._senders is not None:
            await self._senders.aclose()

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        if wedding is None:
            await self.db.run(_drop("sub = ?", sub))
        else:
            await self.db.run(_drop("wedding = ? AND sub = ?", wedding, sub))

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        return await self.db.run(erase_member(wedding, sub))

    def session_ended(self, sid: str) -> None:
        """A device session ended (any process): its subscriptions go (soon, by the loop;
        nothing is sent to them meanwhile, see :meth:`_send_one`)."""
        self._ended.add(sid)
        self.wake.set()

    def notified(self, wedding: str) -> None:
        self.wake.set()

    # -- what routes use -----------------------------------------------------------------

    @property
    def vapid_public_key(self) -> str | None:
        """The public key browsers subscribe with (the edge's ``/access`` reports it)."""
        return self.key.public

    async def subscribe(
        self, wedding: str, sub: str, sid: str, endpoint: str, p256dh: str, auth: str
    ) -> tuple[str, bool]:
        """Register a subscription (the same endpoint again: its keys and session are
        updated); its id and whether it is new. Raises :class:`Impossible` for an
        endpoint that may not receive pushes, or an 11th subscription."""
        try:
            await check_endpoint(endpoint, allow_private=self.settings.push_allow_private)
        except UnsafeTarget as exc:
            raise Impossible(str(exc), field="endpoint") from exc
        fresh = f"ps_{secrets.token_hex(12)}"
        now = clock.now()

        def tx() -> Tx[tuple[str, bool]]:
            same = yield from rows_as(
                IdRow,
                "SELECT id FROM {t}push_subscriptions WHERE wedding = ? AND sub = ?"
                " AND endpoint = ?",
                wedding,
                sub,
                endpoint,
            )
            if same:
                yield Sql(
                    "UPDATE {t}push_subscriptions SET p256dh = ?, auth = ?, sid = ? WHERE id = ?",
                    (p256dh, auth, sid, same[0].id),
                )
                return same[0].id, False
            [kept] = yield from rows_as(
                Count,
                "SELECT COUNT(*) FROM {t}push_subscriptions WHERE wedding = ? AND sub = ?",
                wedding,
                sub,
            )
            if kept.n >= MAX_SUBSCRIPTIONS:
                raise Impossible(
                    f"at most {MAX_SUBSCRIPTIONS} push subscriptions a member", field="endpoint"
                )
            yield Sql(
                "INSERT INTO {t}push_subscriptions (id, wedding, sub, sid, endpoint, p256dh,"
                " auth, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (fresh, wedding, sub, sid, endpoint, p256dh, auth, now),
            )
            return fresh, True

        return await self.db.run(tx())

    async def unsubscribe(self, wedding: str, sub: str, subscription: str) -> None:
        """Remove one of the member's subscriptions (:class:`NotFound` if not theirs)."""
        gone = await self.db.run(
            _drop("id = ? AND wedding = ? AND sub = ?", subscription, wedding, sub)
        )
        if not gone:
            raise NotFound("no such push subscription")

    async def subscriptions(self, wedding: str, sub: str) -> list[SubscriptionRow]:
        return await self.db.fetch_as(
            SubscriptionRow,
            f"SELECT {SUBSCRIPTION_COLUMNS} FROM {{t}}push_subscriptions"
            " WHERE wedding = ? AND sub = ? ORDER BY created_at, id",
            wedding,
            sub,
        )

    async def test(self, wedding: str, sub: str, subscription: str) -> None:
        """Queue a test message to one of the member's subscriptions (urgent lane)."""
        mine = {s.id for s in await self.subscriptions(wedding, sub)}
        if subscription not in mine:
            raise NotFound("no such push subscription")
        now = clock.now()
        notice = -secrets.randbelow(2**53) - 1  # a test message: never an inbox row's id

        def tx() -> Tx[None]:
            yield Sql(
                "INSERT INTO {t}push_outbox (wedding, subscription, notice, lane, due_at,"
                " created_at) VALUES (?, ?, ?, 1, ?, ?)",
                (wedding, subscription, notice, now, now),
            )

        await self.db.run(tx())
        self.wake.set()

    async def prefs(self, wedding: str, sub: str) -> Prefs:
        row = await self.db.fetch_one_as(
            Prefs,
            "SELECT mentions, urgent, emergencies, quiet_start, quiet_end, zone, reminders"
            " FROM {t}push_prefs WHERE wedding = ? AND sub = ?",
            wedding,
            sub,
        )
        return row if row is not None else Prefs()

    async def set_prefs(self, wedding: str, sub: str, prefs: Prefs) -> None:
        def tx() -> Tx[None]:
            yield Sql(
                "INSERT INTO {t}push_prefs (wedding, sub, mentions, urgent, emergencies,"
                " quiet_start, quiet_end, zone, reminders) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (wedding, sub) DO UPDATE SET mentions = excluded.mentions,"
                " urgent = excluded.urgent, emergencies = excluded.emergencies,"
                " quiet_start = excluded.quiet_start, quiet_end = excluded.quiet_end,"
                " zone = excluded.zone, reminders = excluded.reminders",
                (
                    wedding,
                    sub,
                    prefs.mentions,
                    prefs.urgent,
                    prefs.emergencies,
                    prefs.quiet_start,
                    prefs.quiet_end,
                    prefs.zone,
                    prefs.reminders,
                ),
            )

        await self.db.run(tx())

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self.wake.clear()
            try:
                await self.drop_ended()
                while await self.scan():
                    pass
                more = await self.send_due()
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("push delivery paused, the store failed: %s; retrying", exc)
                more = False
            except Exception:
                log.exception("push delivery failed; retrying")
                more = False
            if not more:
                await clock.wait(self.wake, POLL_SECONDS)

    async def drop_ended(self) -> None:
        ended, self._ended = self._ended, set()
        for sid in sorted(ended):
            await self.db.run(_drop("sid = ?", sid))

    async def scan(self) -> bool:
        """Queue what the inbox's newer rows push; whether there may be more."""
        [cursor] = await self.db.fetch_as(
            LastId, "SELECT last_id FROM {t}push_cursor WHERE name = 'notices'"
        )
        notices = await self._inbox.notices_after(cursor.last_id, SCAN)
        if not notices:
            return False
        now = clock.now()
        settle = self.db.dialect == "postgres" and len(notices) < SCAN
        moved = cursor.last_id
        rows: list[tuple[Any, ...]] = []
        settled = True
        for notice in notices:
            # The cursor moves over a prefix of settled rows only (see SETTLE_SECONDS).
            settled = settled and not (settle and notice.created_at > now - SETTLE_SECONDS)
            if settled:
                moved = notice.id
            kind = kind_of(notice)
            if kind is None:
                continue
            prefs = await self.prefs(notice.wedding, notice.sub)
            if not _wanted(kind, prefs):
                continue
            due = now
            if kind != "emergency":
                due = quiet_until(now, prefs.quiet_start, prefs.quiet_end, prefs.zone) or now
            for subscription in await self.subscriptions(notice.wedding, notice.sub):
                lane = LANES.get(kind, 0)
                rows.append((notice.wedding, subscription.id, notice.id, lane, due, now))
        await self.db.run(_queue(rows, cursor.last_id, moved))
        return len(notices) == SCAN and moved > cursor.last_id

    async def send_due(self) -> bool:
        """Send the due messages, a batch at a time, lanes first; whether a full batch
        went (there may be more)."""
        now = clock.now()
        claimed = await self.db.run(_claim(now))
        if not claimed:
            await self.db.run(_prune(now - KEEP_DONE_SECONDS))
            return False
        await asyncio.gather(*(self._send_one(item) for item in claimed))
        return len(claimed) == BATCH

    async def _send_one(self, item: Claimed) -> None:
        settings = self.settings
        found = await self.db.fetch_as(
            SubscriptionRow,
            f"SELECT {SUBSCRIPTION_COLUMNS} FROM {{t}}push_subscriptions WHERE id = ?",
            item.subscription,
        )
        if not found:
            await self.db.run(_done(item.id))
            return
        subscription = found[0]
        if subscription.sid and self._revocations.session_ended(subscription.sid):
            await self.db.run(_drop("id = ?", subscription.id))
            return
        payload = await self._payload(item, subscription)
        if payload is None:
            await self.db.run(_done(item.id))
            return
        assert self._senders is not None
        try:
            status = await push_once(
                self._senders,
                self.key,
                settings.vapid_subject,
                subscription,
                payload.encode(),
                ttl=settings.push_ttl_seconds,
                urgency="high" if item.lane == 2 else "normal",
                topic=topic_of(payload.tag),
                allow_private=settings.push_allow_private,
            )
        except (UnsafeTarget, SendFailed, TimeoutError, ValueError) as exc:
            log.warning("a push message failed (%s); retrying", type(exc).__name__)
            await self._retry(item)
            return
        if status in (404, 410):
            await self.db.run(_drop("id = ?", subscription.id))
        elif 200 <= status < 300:
            self.sent += 1
            await self.db.run(_done(item.id))
        elif status == 429 or status >= 500:
            await self._retry(item)
        else:
            log.warning("a push service refused a message with %d; dropped", status)
            await self.db.run(_done(item.id))

    async def _retry(self, item: Claimed) -> None:
        delays = self.settings.push_retries
        if item.attempts >= len(delays):
            await self.db.run(_done(item.id))
            return
        await self.db.run(_release(item.id, clock.now() + delays[item.attempts]))

    async def _payload(self, item: Claimed, subscription: SubscriptionRow) -> Payload | None:
        """What the message says; ``None``: nothing to say any more (the notice or its
        thread is gone)."""
        wedding = item.wedding
        app = f"/app/?wedding={wedding}"
        if item.notice < 0:
            return Payload(
                wedding, "test", "Test notification", "Push notifications work on this device.",
                app, f"test:{subscription.id}",
            )  # fmt: skip
        notice = await self._inbox.notice(item.notice)
        if notice is None:
            return None
        kind = kind_of(notice) or "mention"
        who = await self._people.member(wedding, notice.actor)
        name = who.name if who is not None else "Someone"
        if not notice.thread:
            if kind != "emergency":
                return await self._told(notice, kind, app)
            return Payload(
                wedding, "emergency", "Emergency", f"{name} raised an emergency",
                f"{app}&inbox=1", f"emergency:{notice.message}",
            )  # fmt: skip
        threads = self._inbox.threads
        said = (
            await threads.quote(wedding, notice.thread, notice.message)
            if threads is not None
            else None
        )
        if said is None:
            return None
        title = {
            "mention": f"{name} mentioned you in \u201c{said.subject}\u201d",
            "urgent": f"Urgent: \u201c{said.subject}\u201d",
            "emergency": f"Emergency: \u201c{said.subject}\u201d",
        }[kind]
        # Only the people a thread's message notified get it, and they are the ones who
        # may read the thread (the threads feature decides); 80 characters of it at most.
        body = "(deleted)" if said.deleted else said.body
        return Payload(
            wedding, kind, title, body, f"{app}&thread={notice.thread}",
            f"thread:{notice.thread}",
        )  # fmt: skip

    async def _told(self, notice: Notice, kind: str, app: str) -> Payload | None:
        """A notice not about a thread as its feature says it (a reminder: overdue, due
        today or due in so many days, with what is due; ``None``: it is gone, or the
        recipient may no longer read it), opening the inbox; a bare title when no feature
        says it."""
        wedding, ref, tag = notice.wedding, notice.message, f"{notice.reason}:{notice.message}"
        if not self._inbox.tells(notice.reason):
            return Payload(wedding, kind, "New notification", "", app, f"{kind}:{ref}")
        member = await self._people.member(wedding, notice.sub)
        told = (
            None if member is None else await self._inbox.tell(wedding, notice.reason, ref, member)
        )
        if told is None:
            return None
        return Payload(wedding, kind, told.title, told.text, f"{app}&inbox=1", tag)


def _start_cursor(last: int) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}push_cursor (name, last_id) VALUES ('notices', ?) ON CONFLICT DO NOTHING",
        (last,),
    )


def _queue(rows: list[tuple[Any, ...]], was: int, moved: int) -> Tx[None]:
    for row in rows:
        yield Sql(
            "INSERT INTO {t}push_outbox (wedding, subscription, notice, lane, due_at,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            row,
        )
    if moved > was:
        yield Sql(
            "UPDATE {t}push_cursor SET last_id = ? WHERE name = 'notices' AND last_id < ?",
            (moved, moved),
        )


def _claim(now: float) -> Tx[list[Claimed]]:
    claimed = yield from rows_as(
        Claimed,
        "UPDATE {t}push_outbox SET claimed_until = ?, attempts = attempts + 1 WHERE id IN"
        " (SELECT id FROM {t}push_outbox WHERE done_at IS NULL AND due_at <= ?"
        " AND claimed_until < ? ORDER BY lane DESC, id LIMIT ?)"
        " RETURNING id, wedding, subscription, notice, lane, attempts",
        now + CLAIM_SECONDS,
        now,
        now,
        BATCH,
    )
    return sorted(claimed, key=lambda c: (-c.lane, c.id))


def _release(id_: int, at: float) -> Tx[None]:
    yield Sql("UPDATE {t}push_outbox SET claimed_until = 0, due_at = ? WHERE id = ?", (at, id_))


def _done(id_: int) -> Tx[None]:
    yield Sql("UPDATE {t}push_outbox SET done_at = ? WHERE id = ?", (clock.now(), id_))


def _prune(before: float) -> Tx[None]:
    yield Sql("DELETE FROM {t}push_outbox WHERE done_at < ?", (before,))


def _drop(where: str, *params: object) -> Tx[bool]:
    return bool((yield from remove_subscriptions(where, *params)))
