"""Text messages through Kannel: members' verified numbers, the durable SMS outbox that
follows the notifications inbox, and delivery reports.

Whatever notifies someone writes an inbox row in its own transaction (the notifications
feature). This extension follows the inbox in id order (a cursor in the store, as the push
feature does): each notice that goes by text (an emergency, always; a vendor missing at
their call time, a delay that moved a vendor's item, a member offline on duty, unless
the member turned those off; urgent thread messages and mentions, if the member turned
them on) becomes one ``sms_outbox`` row for the member's verified number, in one
transaction with the cursor's move and the day's counts, so a notice is queued once and
durably (rows are unique by member and notice). Texts are claimed in lane order
(emergencies, then urgent ones and verification codes, then the rest) with a lease, handed
to Kannel's ``sendsms`` and retried on ``CRDT_SERVER_SMS_RETRY_SCHEDULE``; a process that
stops finishes the text in hand first. Quiet hours hold what is not an emergency until
they end; a number that texted STOP gets nothing until START.

What a text says is cut to what its reader may read, never a guest's contact or notes;
its link is built like a sign-in link (:func:`crdt_server.edge.links.outbound_url`, never
a request's ``Host``). Kannel fetches each text's ``dlr-url``
(``/api/sms/status/{id}?token=...&status=%d``, the token an HMAC of the id under the key
kept in the store) and the report is recorded on the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client import Counter

from crdt_server import clock
from crdt_server.core.hooks import Core, Extension
from crdt_server.core.limits import RateLimiter
from crdt_server.edge.links import outbound_url
from crdt_server.errors import Conflict, Impossible, NotFound, TooMany, Unavailable
from crdt_server.features.notifications import Notice, Notifications
from crdt_server.features.people import Member, People
from crdt_server.features.push import quiet_until
from crdt_server.features.sms import tables
from crdt_server.features.sms.domain import (
    clip,
    code_hash,
    dlr_token,
    fit_link,
    new_code,
    same_token,
)
from crdt_server.features.sms.service import Kannel
from crdt_server.features.sms.settings import SmsSettings
from crdt_server.storage import Gateway, StoreError
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = ["CODE_SECONDS", "LANES", "Texts", "kept_key", "kind_of"]

log = logging.getLogger("crdt_server.sms")

CODE_SECONDS = 600.0
"""A verification code works this long, and for its newest number only."""
CODE_TRIES = 5
"""Wrong codes before the number must be asked for again."""
CLAIM_SECONDS = 60.0
POLL_SECONDS = 1.0
BATCH = 20
SCAN = 200
SETTLE_SECONDS = 30.0
"""On PostgreSQL, ids are not committed in order: the cursor stays behind inbox rows
younger than this, so a late commit is still seen (the unique key drops the repeat)."""
KEEP_SECONDS = 7 * 86400.0
"""Sent and failed texts are kept this long (their delivery reports, the code limit)."""
EMERGENCY_REASONS = frozenset({"emergency", "emergency_unacknowledged", "emergency_vendor"})
DAY_REASONS = frozenset({"day.vendor_missing", "timeline_delayed", "day.member_offline"})
LANES = tables.LANES
Sayer = Callable[[str, Notice, Member], Awaitable[str | None]]
"""What says a notice in a text: called with the wedding, the notice and the recipient
(what it says is cut to what their role may read); ``None``: nothing to say (it is gone)."""


def kind_of(notice: Notice) -> str | None:
    """What a notice is to text (``emergency``, ``day``, ``urgent``, ``mention``), or
    ``None``."""
    if notice.reason in EMERGENCY_REASONS or notice.priority == "emergency":
        return "emergency"
    if notice.reason in DAY_REASONS:
        return "day"
    if notice.priority == "urgent" and notice.thread:
        return "urgent"
    if notice.reason == "mention":
        return "mention"
    return None


def _wanted(kind: str, phone: tables.Phone) -> bool:
    return kind == "emergency" or bool(
        {"day": phone.day, "urgent": phone.urgent, "mention": phone.mentions}.get(kind, 0)
    )


def utc_day(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).date().isoformat()


async def kept_key(core: Core) -> bytes:
    """The feature's key, kept in the store (made by the first process that starts)."""
    key = await Gateway.of(core.store).run(tables.keep_key(secrets.token_hex(32), clock.now()))
    return bytes.fromhex(key)


class Texts(Extension):
    """See the module docstring."""

    name = "sms"

    def __init__(self, core: Core, key: bytes, inbox: Notifications, people: People) -> None:
        """``key``: the key of the delivery reports' tokens and the codes' hashes
        (:func:`kept_key`, read when the feature is built)."""
        self._inbox = inbox
        self._people = people
        self.db = Gateway.of(core.store)
        self._core = core
        self.settings = core.settings.fragment(SmsSettings)
        self._key = key
        self._kannel: Kannel | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.sayers: dict[str, Sayer] = {}
        """By notice reason, what says it in a text (other features' words, set where
        the feature is built); a thread notice is said from its quote."""
        per_hour = self.settings.sms_per_address_per_hour
        self.address_limiter = RateLimiter(per_hour / 3600.0, float(per_hour))
        """Phone requests per client address (``sms_per_address_per_hour``)."""
        self.wake = asyncio.Event()
        self.sent = 0
        """Texts Kannel took from this process."""
        registry = core.registry.metrics.registry
        self._sent_metric = Counter(
            "crdt_sms_sent", "Texts Kannel accepted, by kind", ["kind"], registry=registry
        )
        self._refused_metric = Counter(
            "crdt_sms_capped", "Texts not sent for a daily cap, by cap", ["cap"],
            registry=registry,
        )  # fmt: skip

    # -- hooks ---------------------------------------------------------------------------

    async def start(self, core: Core) -> None:
        last = await self._inbox.last_notice()
        await self.db.run(tables.start_cursor(last))
        settings = self.settings
        if settings.sms_url:
            self._kannel = Kannel(settings.sms_url, settings.sms_from, settings.sms_timeout_seconds)
            self._task = asyncio.create_task(self._run(), name="sms")

    async def close(self) -> None:
        self._stopping = True  # the text in hand is finished: none is sent twice
        self.wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(
                    asyncio.shield(self._task), self.settings.sms_timeout_seconds + 1
                )
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._kannel is not None:
            await self._kannel.aclose()

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        return await self.db.run(tables.erase_member(wedding, sub))

    async def on_revoke(self, sub: str, wedding: str | None) -> None:
        """A member removed or revoked (``wedding`` ``None``: everywhere) is texted no
        more: their number and their unsent texts go."""
        if wedding is not None:
            await self.db.run(tables.erase_member(wedding, sub))
            return
        for row in await self.db.fetch_as(
            tables.Phone,
            f"SELECT {tables.PHONE_COLUMNS} FROM {{t}}sms_phones WHERE sub = ?",
            sub,
        ):
            await self.db.run(tables.erase_member(row.wedding, sub))

    def notified(self, wedding: str) -> None:
        self.wake.set()

    @property
    def sending(self) -> bool:
        """Whether texts go out (``CRDT_SERVER_SMS_URL`` is set)."""
        return bool(self.settings.sms_url)

    # -- numbers -------------------------------------------------------------------------

    async def phone(self, wedding: str, sub: str) -> tables.Phone | None:
        return await self.db.fetch_one_as(
            tables.Phone,
            f"SELECT {tables.PHONE_COLUMNS} FROM {{t}}sms_phones WHERE wedding = ? AND sub = ?",
            wedding,
            sub,
        )

    async def add_phone(self, wedding: str, sub: str, phone: str) -> None:
        """Text a code that verifies ``phone`` (E.164, of an allowed country) for the
        member; :class:`Conflict` if another person verified it, :class:`TooMany` over
        the member's hourly codes or a daily cap."""
        if not self.sending:
            raise Unavailable("this server sends no texts (CRDT_SERVER_SMS_URL is unset)")
        settings = self.settings
        code = new_code()
        hashed = code_hash(self._key, wedding, sub, phone, code)
        now = clock.now()
        body = f"Your wedding planner code is {code}. It works for 10 minutes."

        def tx() -> Tx[None]:
            taken = yield from rows_as(
                tables.Count,
                "SELECT COUNT(*) FROM {t}sms_phones WHERE phone = ? AND sub <> ?",
                phone,
                sub,
            )
            if taken[0].n:
                raise Conflict("another person verified this number", field="phone")
            [codes] = yield from rows_as(
                tables.Count,
                "SELECT COUNT(*) FROM {t}sms_outbox WHERE wedding = ? AND sub = ?"
                " AND kind = 'code' AND created_at > ?",
                wedding,
                sub,
                now - 3600,
            )
            if codes.n >= settings.sms_codes_per_hour:
                raise TooMany(
                    f"at most {settings.sms_codes_per_hour} codes an hour"
                    " (CRDT_SERVER_SMS_CODES_PER_HOUR)",
                    field="phone",
                    retry_after=3600,
                )
            yield from self._counted(wedding, now, refuse=True)
            yield Sql(
                "INSERT INTO {t}sms_phones (wedding, sub, phone, verified_at, pending,"
                " code_hash, code_expires, tries, stopped, mentions, urgent, day,"
                " quiet_start, quiet_end, zone) VALUES (?, ?, '', NULL, ?, ?, ?, 0, 0, 0, 0,"
                " 1, '', '', '') ON CONFLICT (wedding, sub) DO UPDATE SET"
                " pending = excluded.pending, code_hash = excluded.code_hash,"
                " code_expires = excluded.code_expires, tries = 0",
                (wedding, sub, phone, hashed, now + CODE_SECONDS),
            )
            ref = -tables.fresh_notice()
            yield from tables.queued(wedding, sub, phone, body, "code", ref, now, now)

        await self.db.run(tx())
        self.wake.set()

    async def verify(self, wedding: str, sub: str, code: str) -> str:
        """Make the member's pending number theirs with its code; the number.
        :class:`Impossible` for a wrong, used or expired code."""
        step = tables.verify_code(self._key, wedding, sub, code, clock.now(), CODE_TRIES)
        phone = await self.db.run(step)
        if phone is None:
            raise Impossible("this code is wrong, used or expired: ask for a new one", field="code")
        return phone

    async def remove_phone(self, wedding: str, sub: str) -> None:
        """Forget the member's number (verified and pending) and their unsent texts."""

        def tx() -> Tx[None]:
            yield Sql("DELETE FROM {t}sms_phones WHERE wedding = ? AND sub = ?", (wedding, sub))
            yield Sql(
                "UPDATE {t}sms_outbox SET status = 'cancelled' WHERE wedding = ? AND sub = ?"
                " AND status = 'queued'",
                (wedding, sub),
            )

        await self.db.run(tx())

    async def set_choices(
        self, wedding: str, sub: str, mentions: bool, urgent: bool, day: bool,
        quiet: tuple[str, str, str] | None,
    ) -> None:  # fmt: skip
        """What the member wants texted (emergencies always), and their quiet hours."""
        start, end, zone = quiet or ("", "", "")

        def tx() -> Tx[int]:
            changed: int = yield Sql(
                "UPDATE {t}sms_phones SET mentions = ?, urgent = ?, day = ?,"
                " quiet_start = ?, quiet_end = ?, zone = ? WHERE wedding = ? AND sub = ?",
                (int(mentions), int(urgent), int(day), start, end, zone, wedding, sub),
                count=True,
            )
            return changed

        if not await self.db.run(tx()):
            raise NotFound("add a phone number first", field="phone")

    async def texts(self, wedding: str, sub: str) -> list[tables.Sent]:
        """The member's texts of the last week, newest first (no bodies)."""
        return await self.db.fetch_as(
            tables.Sent,
            "SELECT id, kind, status, dlr, created_at, sent_at, reported_at FROM"
            " {t}sms_outbox WHERE wedding = ? AND sub = ? ORDER BY id DESC LIMIT 100",
            wedding,
            sub,
        )

    # -- inbound -------------------------------------------------------------------------

    async def numbers(self, phone: str) -> list[tables.Phone]:
        """The members who verified ``phone`` (one person, in one or more weddings)."""
        return await self.db.fetch_as(
            tables.Phone,
            f"SELECT {tables.PHONE_COLUMNS} FROM {{t}}sms_phones WHERE phone = ?"
            " ORDER BY verified_at DESC, wedding",
            phone,
        )

    async def chosen(self, holders: list[tables.Phone]) -> tables.Phone:
        """Which of a number's memberships a text from it is for: the wedding that texted
        it last, else the one where it was verified last."""
        best, best_id = holders[0], 0
        for row in holders:
            last = await self.db.fetch_one_as(
                tables.Count,
                "SELECT COALESCE(MAX(id), 0) FROM {t}sms_outbox WHERE wedding = ? AND sub = ?"
                " AND phone = ?",
                row.wedding,
                row.sub,
                row.phone,
            )
            if last is not None and last.n > best_id:
                best, best_id = row, last.n
        return best

    async def reply_allowed(self, wedding: str) -> bool:
        """Count a reply to an inbound text against the day's caps; false over one."""
        now = clock.now()
        return await self.db.run(self._counted(wedding, now, refuse=False))

    async def stop(self, phone: str, stopped: bool) -> None:
        """STOP (``stopped``) or START from ``phone``: every text to it ends or resumes;
        what was queued for it is cancelled."""

        def tx() -> Tx[None]:
            yield Sql("UPDATE {t}sms_phones SET stopped = ? WHERE phone = ?", (int(stopped), phone))
            if stopped:
                yield Sql(
                    "UPDATE {t}sms_outbox SET status = 'cancelled' WHERE phone = ?"
                    " AND status = 'queued'",
                    (phone,),
                )

        await self.db.run(tx())

    # -- delivery reports ----------------------------------------------------------------

    async def report(self, message: int, token: str, status: int) -> bool:
        """Record Kannel's delivery report ``status`` on text ``message``; false when the
        token is not that text's (nothing recorded)."""
        if not same_token(self._key, message, token):
            return False
        now = clock.now()
        final = {1: "delivered", 2: "undelivered", 16: "rejected"}.get(status)

        def tx() -> Tx[int]:
            # A late interim report (8: the SMSC took it) never hides a final one.
            changed: int = yield Sql(
                "UPDATE {t}sms_outbox SET reported_at = ?,"
                " dlr = CASE WHEN ? <> '' OR status NOT IN ('delivered', 'undelivered',"
                " 'rejected') THEN ? ELSE dlr END,"
                " status = CASE WHEN ? <> '' THEN ? ELSE status END WHERE id = ?",
                (now, final or "", status, final or "", final or "", message),
                count=True,
            )
            return changed

        return bool(await self.db.run(tx()))

    def status_url(self, message: int) -> str:
        """The ``dlr-url`` of one text (Kannel puts the report's type for ``%d``)."""
        token = dlr_token(self._key, message)
        path = f"/api/sms/status/{message}?token={token}&status=%d"
        return outbound_url(None, self._core.settings, path)

    def app_link(self, wedding: str) -> str:
        return outbound_url(None, self._core.settings, f"/app/?wedding={wedding}")

    # -- queueing ------------------------------------------------------------------------

    def _counted(self, wedding: str, now: float, *, refuse: bool) -> Tx[bool]:
        """Count one text against today's caps; over one: :class:`TooMany` naming it
        (``refuse``), else false and the refusal counted."""
        settings = self.settings
        over = yield from tables.count_day(
            utc_day(now),
            (f"w:{wedding}", "server"),
            (settings.sms_per_wedding_per_day, settings.sms_per_server_per_day),
        )
        if over is None:
            return True
        cap = ("CRDT_SERVER_SMS_PER_WEDDING_PER_DAY", "CRDT_SERVER_SMS_PER_SERVER_PER_DAY")[over]
        self._refused_metric.labels(("wedding", "server")[over]).inc()
        if refuse:
            raise TooMany(f"today's texts are used up ({cap})", retry_after=3600)
        log.warning("a text was not sent: %s is reached", cap)
        return False

    async def queue(
        self, wedding: str, sub: str, body: str, kind: str, *, notice: int | None = None
    ) -> bool:
        """Text ``body`` to the member's verified number now (unless they said STOP or
        have none); false if nothing was queued."""
        phone = await self.phone(wedding, sub)
        if phone is None or not phone.phone or phone.stopped or not self.sending:
            return False
        now = clock.now()

        def tx() -> Tx[bool]:
            if not (yield from self._counted(wedding, now, refuse=False)):
                return False
            ref = -tables.fresh_notice() if notice is None else notice
            yield from tables.queued(wedding, sub, phone.phone, clip(body), kind, ref, now, now)
            return True

        queued = await self.db.run(tx())
        self.wake.set()
        return queued

    # -- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self.wake.clear()
            try:
                while not self._stopping and await self.scan():
                    pass
                more = await self.send_due()
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("texts paused, the store failed: %s; retrying", exc)
                more = False
            except Exception:
                log.exception("sending texts failed; retrying")
                more = False
            if not more and not self._stopping:
                await clock.wait(self.wake, POLL_SECONDS)

    async def scan(self) -> bool:
        """Queue what the inbox's newer rows text; whether there may be more."""
        [cursor] = await self.db.fetch_as(
            tables.LastId, "SELECT last_id FROM {t}sms_cursor WHERE name = 'notices'"
        )
        notices = await self._inbox.notices_after(cursor.last_id, SCAN)
        if not notices:
            return False
        now = clock.now()
        settle = self.db.dialect == "postgres" and len(notices) < SCAN
        moved = cursor.last_id
        rows: list[tuple[Notice, tables.Phone, str, float, str, str]] = []
        settled = True
        for notice in notices:
            settled = settled and not (settle and notice.created_at > now - SETTLE_SECONDS)
            if settled:
                moved = notice.id
            kind = kind_of(notice)
            if kind is None:
                continue
            phone = await self.phone(notice.wedding, notice.sub)
            if phone is None or not phone.phone:
                continue
            due = now
            if kind != "emergency":
                quiet = quiet_until(now, phone.quiet_start, phone.quiet_end, phone.zone)
                due = quiet or now
            text = ""
            if phone.stopped or not _wanted(kind, phone):
                status = "skipped"
            else:
                said = await self.say(notice)
                status, text = ("queued", said) if said is not None else ("skipped", "")
            rows.append((notice, phone, kind, due, status, text))

        def tx() -> Tx[None]:
            # Each notice is decided once per member, skipped ones too (the cursor may read
            # it again on PostgreSQL: a later START or choice never sends an old notice).
            for notice, phone, kind, due, status, text in rows:
                fresh = yield from rows_as(
                    tables.Count,
                    "SELECT COUNT(*) FROM {t}sms_outbox WHERE wedding = ? AND sub = ?"
                    " AND notice = ?",
                    notice.wedding,
                    notice.sub,
                    notice.id,
                )
                if fresh[0].n:
                    continue
                if status == "queued" and not (
                    yield from self._counted(notice.wedding, now, refuse=False)
                ):
                    status = "capped"
                yield from tables.queued(
                    notice.wedding, notice.sub, phone.phone, clip(text), kind, notice.id, due,
                    now, status,
                )  # fmt: skip
            if moved > cursor.last_id:
                yield Sql(
                    "UPDATE {t}sms_cursor SET last_id = ? WHERE name = 'notices' AND last_id < ?",
                    (moved, moved),
                )

        await self.db.run(tx())
        return len(notices) == SCAN and moved > cursor.last_id

    async def say(self, notice: Notice) -> str | None:
        """What a text says of ``notice`` (``None``: nothing any more)."""
        member = await self._people.member(notice.wedding, notice.sub)
        if member is None:
            return None
        link = self.app_link(notice.wedding)
        sayer = self.sayers.get(notice.reason)
        if not notice.thread and sayer is not None:
            text = await sayer(notice.wedding, notice, member)
            return None if text is None else f"{text} {link}"
        if not notice.thread:
            return None
        threads = self._inbox.threads
        quote = (
            await threads.quote(notice.wedding, notice.thread, notice.message)
            if threads is not None
            else None
        )
        if quote is None:
            return None
        who = await self._people.member(notice.wedding, quote.author)
        name = who.name if who is not None else "Someone"
        flag = {"emergency": "EMERGENCY ", "urgent": "URGENT "}.get(notice.priority, "")
        body = "(deleted)" if quote.deleted else " ".join(quote.body.split())
        # Plain quotes: curly ones are not in GSM-7 and would make every such text UCS-2.
        head = f'{flag}{name} in "{" ".join(quote.subject.split())}": '
        return fit_link(head, body, link)

    async def send_due(self) -> bool:
        """Send the due texts, a batch at a time, lanes first; whether a full batch went."""
        now = clock.now()
        claimed = await self.db.run(tables.claim(now, now + CLAIM_SECONDS, BATCH))
        if not claimed:
            await self.db.run(tables.prune(now - KEEP_SECONDS))
            return False
        for item in claimed:
            if self._stopping:
                # Not in hand: given back now, for the next process (no lapse to wait).
                await self.db.run(tables.release(item.id, 0.0, undo=True))
                continue
            await self._send_one(item)
        return len(claimed) == BATCH

    async def _send_one(self, item: tables.Claimed) -> None:
        assert self._kannel is not None
        result = await self._kannel.send(item.phone, item.body, self.status_url(item.id))
        if result.taken:
            self.sent += 1
            await self.db.run(tables.mark_sent(item.id, clock.now()))
            self._sent_metric.labels(item.kind).inc()
            return
        delays = self.settings.sms_retries
        if result.permanent or item.attempts >= len(delays):
            await self.db.run(tables.mark_failed(item.id))
            return
        await self.db.run(tables.release(item.id, clock.now() + delays[item.attempts]))
