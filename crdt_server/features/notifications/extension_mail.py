"""Notification emails from the durable outbox (:mod:`.inbox`), which threads and other
features fill.

A message that notifies someone by email writes an outbox row in its own transaction, so an
acknowledged message's email survives a crash or restart. This sender (when
``CRDT_SERVER_SMTP_URL`` is set) sends each person at most one email per
``CRDT_SERVER_EMAIL_DIGEST_SECONDS``: the first at once, what comes in the window after it
together, as one digest, when the window ends. ``urgent`` and ``emergency`` rows are sent at
once (with whatever was held for that person), on the urgent lane: claimed first
(:func:`~.tables.claim_lane`), ahead of any backlog of normal rows. Several processes share
the outbox: a person's rows are claimed in a transaction before sending (a claim lapses
after a minute, so a crash mid-send retries: delivery is at least once). Every email has an
unsubscribe link (and ``List-Unsubscribe`` headers, RFC 8058).

What an email says of a notification comes from the feature that made it: the threads
feature says what a thread message was (:meth:`Notifications.describe_threads`), others
register their reasons (:meth:`Mailer.describe`); the member directory gives names,
addresses and unsubscribe keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from crdt_server import clock
from crdt_server.cluster.messages import from_event
from crdt_server.core.hooks import Core, Extension
from crdt_server.edge.links import outbound_url
from crdt_server.features.notifications.domain_mail import envelope
from crdt_server.features.notifications.extension import (
    Notifications,
    OutboxQueued,
    Teller,
)
from crdt_server.features.notifications.settings import NotificationSettings
from crdt_server.features.notifications.tables import (
    LANED_COLUMNS,
    OUTBOX,
    DueOutbox,
    GuestMailItem,
    LanedOutboxItem,
    MailItem,
    OutboxItem,
    claim_lane,
)
from crdt_server.features.people import Member, People, emailed
from crdt_server.names import at_least
from crdt_server.storage import StoreError
from crdt_server.storage.gateway import Sql, Tx, rows_as

__all__ = ["Mailer", "Notice", "SmtpTarget"]

log = logging.getLogger("crdt_server.mail")

CLAIM_SECONDS = 60.0
URGENT_CLAIM = 50
"""Urgent and emergency rows the urgent lane claims per pass."""
RETRY_SECONDS = 5.0
POLL_SECONDS = 2.0
"""How often the outbox is looked at without a wake-up (rows of other processes, held
digests coming due)."""


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where and how to send, from ``smtp://user:pass@host:port`` (STARTTLS when the
    server offers it) or ``smtps://`` (TLS from the start)."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        tls = parts.scheme == "smtps"
        return cls(
            parts.hostname or "localhost",
            parts.port or (465 if tls else 25),
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None,
            tls,
        )


Notice = Teller
"""What says a notification not about a thread in an email (:data:`Teller`)."""


class Mailer(Extension):
    """Sends the outbox (see the module docstring)."""

    name = "mailer"

    def __init__(self, core: Core, notifications: Notifications, people: People) -> None:
        self._inbox = notifications
        self._people = people
        self._task: asyncio.Task[None] | None = None
        self._core = core
        self.sent = 0
        """Emails sent by this process (for tests and metrics)."""

    def describe(self, reason: str, says: Notice, subject: str) -> None:
        """Say notifications of ``reason`` (not about a thread) in emails (and pushes) with
        ``says`` (:data:`Notice`); ``subject``: the email's subject when it says only one
        of them and ``says`` gives a bare text; a :class:`Told` brings its own (a payment
        overdue is not titled as one due today). See :meth:`Notifications.describe`."""
        self._inbox.describe(reason, says, subject)

    async def start(self, core: Core) -> None:
        smtp_url = core.settings.fragment(NotificationSettings).smtp_url
        if smtp_url:
            self._target = SmtpTarget.parse(smtp_url)
            self._task = asyncio.create_task(self._run(), name="mailer")

    def on_bus_event(self, event: dict[str, Any]) -> None:
        if from_event(event, OutboxQueued) is not None:
            self._inbox.outbox_wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        wake = self._inbox.outbox_wake
        while True:
            wake.clear()
            try:
                pause = await self.send_due()
            except StoreError as exc:  # a full disk, a lost database: one line, not a trace
                log.warning("notification emails paused, the store failed: %s; retrying", exc)
                pause = RETRY_SECONDS
            except Exception:
                log.exception("sending notification emails failed; retrying")
                pause = RETRY_SECONDS
            # By the server's clock: a fake clock's advance sends what it made due.
            await clock.wait(wake, max(0.05, min(pause, POLL_SECONDS)))

    async def send_due(self) -> float:
        """Send every person's due rows; seconds until the next held row comes due."""
        digest = self._core.settings.fragment(NotificationSettings).email_digest_seconds
        db = self._inbox.db
        now = clock.now()
        waiting = await db.fetch_as(
            DueOutbox,
            "SELECT wedding, sub,"
            " MAX(CASE WHEN priority IN ('urgent', 'emergency') THEN 1 ELSE 0 END)"
            " FROM {t}notification_outbox WHERE claimed_until < ? GROUP BY wedding, sub",
            now,
        )
        pause = POLL_SECONDS
        await self._send_addressed()
        await self._send_urgent_lane()
        for person in waiting:
            due = await self._people.emailed_at(person.wedding, person.sub) + digest
            if person.urgent or now >= due:
                await self._send(person.wedding, person.sub)
            else:
                pause = min(pause, due - now)
        return pause

    async def _send_addressed(self) -> None:
        """Send the emails to bare addresses (sign-in links), each at once."""
        db = self._inbox.db
        now = clock.now()

        def claim() -> Tx[list[MailItem]]:
            return (
                yield from rows_as(
                    MailItem,
                    "UPDATE {t}mail_outbox SET claimed_until = ? WHERE id IN (SELECT id FROM"
                    " {t}mail_outbox WHERE claimed_until < ? ORDER BY id LIMIT 50)"
                    " RETURNING id, address, subject, body",
                    now + CLAIM_SECONDS,
                    now,
                )
            )

        for item in sorted(await db.run(claim()), key=lambda i: i.id):
            sender = self._core.settings.fragment(NotificationSettings).email_from
            email = envelope(sender, item.address, item.subject)
            email.set_content(item.body, cte="quoted-printable")
            if not await self._deliver(email):
                await db.run(_release_mail(int(item.id), clock.now() + RETRY_SECONDS))
                continue
            await db.run(_done_mail(int(item.id)))
        await self._send_to_guests()

    async def _send_to_guests(self) -> None:
        """Send the emails to guests (RSVP links), each at once: the couple's name before
        the server's address, and the guest's unsubscribe link."""
        db = self._inbox.db
        now = clock.now()

        def claim() -> Tx[list[GuestMailItem]]:
            return (
                yield from rows_as(
                    GuestMailItem,
                    "UPDATE {t}guest_mail SET claimed_until = ? WHERE id IN (SELECT id FROM"
                    " {t}guest_mail WHERE claimed_until < ? ORDER BY id LIMIT 50)"
                    " RETURNING id, address, from_name, subject, body, unsubscribe",
                    now + CLAIM_SECONDS,
                    now,
                )
            )

        sender = self._core.settings.fragment(NotificationSettings).email_from
        for item in sorted(await db.run(claim()), key=lambda i: i.id):
            email = envelope(sender, item.address, item.subject, from_name=item.from_name)
            email["List-Unsubscribe"] = f"<{item.unsubscribe}>"
            email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            email.set_content(
                f"{item.body}\n--\nStop these emails: {item.unsubscribe}\n", cte="quoted-printable"
            )
            if not await self._deliver(email):
                await db.run(_release_guest_mail(int(item.id), clock.now() + RETRY_SECONDS))
                continue
            await db.run(_done_guest_mail(int(item.id)))

    async def _deliver(self, email: EmailMessage) -> bool:
        """Send one email; whether it went (a failure is logged without addresses)."""
        import aiosmtplib  # imported by the first email, not by every process start

        try:
            await aiosmtplib.send(
                email,
                hostname=self._target.host,
                port=self._target.port,
                username=self._target.username,
                password=self._target.password,
                use_tls=self._target.tls,
                timeout=30,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            # No addresses or bodies in the log: only what failed.
            log.error("an email could not be sent (retrying): %s", type(exc))
            return False
        self.sent += 1
        return True

    async def _send_urgent_lane(self) -> None:
        """The urgent lane first: the people with urgent or emergency rows, oldest first,
        ahead of any backlog of normal ones (each email with what was held for them)."""
        db = self._inbox.db
        now = clock.now()
        claimed = await db.run(
            claim_lane(
                LanedOutboxItem,
                OUTBOX.name,
                "urgent",
                LANED_COLUMNS,
                now,
                now + CLAIM_SECONDS,
                URGENT_CLAIM,
            )
        )
        people: dict[tuple[str, str], list[OutboxItem]] = {}
        for item in sorted(claimed, key=lambda i: i.id):
            people.setdefault((item.wedding, item.sub), []).append(item)
        for (wedding, sub), items in people.items():
            await self._send(wedding, sub, items)

    async def _send(self, wedding: str, sub: str, claimed: Sequence[OutboxItem] = ()) -> None:
        """Send a person's rows: ``claimed`` (by the urgent lane) and the rest of theirs."""
        db = self._inbox.db
        now = clock.now()

        def claim() -> Tx[list[OutboxItem]]:
            return (
                yield from rows_as(
                    OutboxItem,
                    "UPDATE {t}notification_outbox SET claimed_until = ? WHERE wedding = ?"
                    " AND sub = ? AND claimed_until < ?"
                    " RETURNING id, reason, thread, message, priority",
                    now + CLAIM_SECONDS,
                    wedding,
                    sub,
                    now,
                )
            )

        items = sorted([*claimed, *await db.run(claim())], key=lambda item: item.id)
        if not items:
            return  # another process took them
        ids = [int(i.id) for i in items]
        member = await self._people.member(wedding, sub)
        email = None
        if member is not None and member.email and member.email_on:
            # None: nothing left to say (every notice's finding closed meanwhile).
            email = await self._compose(wedding, member, member.email, items)
        if email is not None and not await self._deliver(email):
            await db.run(_release(ids, clock.now() + RETRY_SECONDS))
            return
        await db.run(_done(wedding, sub, ids, clock.now()))

    async def _compose(
        self, wedding: str, member: Member, address: str, items: list[OutboxItem]
    ) -> EmailMessage | None:
        sub = member.sub
        settings = self._core.settings
        names = {m.sub: m.name for m in await self._people.members(wedding)}
        lines = []
        subjects = []
        titles: list[str] = []
        for item in items:
            reason, thread, message, priority = (
                item.reason,
                item.thread,
                item.message,
                item.priority,
            )
            if not thread and self._inbox.tells(str(reason)):
                told = await self._inbox.tell(wedding, str(reason), str(message), member)
                if told is not None:
                    # Not a thread: the subject names no thread, it says what this is.
                    titles.append(told.title)
                    lines.append(told.text + "\n")
                continue
            threads = self._inbox.threads
            said = (
                await threads.quote(wedding, str(thread), str(message))
                if thread and threads is not None
                else None
            )
            if said is None:
                continue
            subject = " ".join(said.subject.split())  # never a line break in a header
            subjects.append(subject)
            who = names.get(said.author, said.author or "someone")
            flag = f"[{str(priority).upper()}] " if at_least(str(priority), "urgent") else ""
            why = {"mention": "mentioned you", "reply": "replied to you"}.get(str(reason), "wrote")
            text = "(deleted)" if said.deleted else said.body
            lines.append(f"{flag}{who} {why} in \u201c{subject}\u201d:\n{text}\n")
        if not lines:
            return None
        key = await self._people.unsubscribe_key(wedding, sub) or ""
        # A link that leaves the requester: the public URL, else where the server listens.
        link = outbound_url(
            None,
            settings,
            f"/api/weddings/{quote(wedding)}/members/{quote(sub, safe='')}"
            f"/unsubscribe?key={quote(key)}",
        )
        urgent = any(i.priority != "normal" for i in items)
        subject = ("[URGENT] " if urgent else "") + _subject(subjects, titles)
        # The one way headers are built: the From address is the setting, never a name.
        email = envelope(settings.fragment(NotificationSettings).email_from, address, subject)
        email["List-Unsubscribe"] = f"<{link}>"
        email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email.set_content(
            "\n".join(lines) + f"\n--\nStop these emails: {link}\n", cte="quoted-printable"
        )
        return email


def _subject(threads: Sequence[str], titles: Sequence[str]) -> str:
    """An email's subject, by what it says: the thread of its one message, the title of
    its one other notice (a payment overdue, a task due today...), or how many messages
    there are; with other notices among several, the first one's title leads (a reminder
    is never announced as thread messages)."""
    if not titles:
        if len(threads) == 1:
            return f"New in \u201c{threads[0]}\u201d"
        return f"{len(threads)} new messages in your wedding threads"
    more = len(threads) + len(titles) - 1
    return titles[0] if not more else f"{titles[0]}, and {more} more"


def _release_mail(id_: int, at: float) -> Tx[None]:
    yield Sql("UPDATE {t}mail_outbox SET claimed_until = ? WHERE id = ?", (at, id_))


def _release_guest_mail(id_: int, at: float) -> Tx[None]:
    yield Sql("UPDATE {t}guest_mail SET claimed_until = ? WHERE id = ?", (at, id_))


def _done_guest_mail(id_: int) -> Tx[None]:
    yield Sql("DELETE FROM {t}guest_mail WHERE id = ?", (id_,))


def _done_mail(id_: int) -> Tx[None]:
    yield Sql("DELETE FROM {t}mail_outbox WHERE id = ?", (id_,))


def _release(ids: list[int], at: float) -> Tx[None]:
    marks = ",".join("?" * len(ids))
    yield Sql(
        f"UPDATE {{t}}notification_outbox SET claimed_until = ? WHERE id IN ({marks})", (at, *ids)
    )


def _done(wedding: str, sub: str, ids: list[int], at: float) -> Tx[None]:
    marks = ",".join("?" * len(ids))
    yield Sql(f"DELETE FROM {{t}}notification_outbox WHERE id IN ({marks})", tuple(ids))
    yield from emailed(wedding, sub, at)
