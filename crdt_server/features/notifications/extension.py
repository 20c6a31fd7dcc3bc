"""Each person's notifications inbox and the email outbox.

Whatever notifies someone writes the rows in the transaction of what caused it, so an
acknowledged change's notices survive a crash: a feature composes this module's steps
(:func:`notify`, with ``yield from``) into its own transaction, or returns
:func:`notice_rows` from its ``on_commit`` hook. The inbox reads them back; the mailer
(:mod:`crdt_server.features.notifications.extension_mail`) sends the outbox.

Notifications about a thread carry its id; the threads feature says what they are about
(:meth:`Notifications.describe_threads`): without it, they are not shown. What the others
say outside the app (an email, a push) comes from the feature that made them
(:meth:`Notifications.describe`, :meth:`Notifications.tell`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from crdt_server import clock
from crdt_server.actor import Actor
from crdt_server.cluster.messages import BusMessage, to_event
from crdt_server.core.hooks import Core, Extension
from crdt_server.features.notifications.domain_mail import subject_line
from crdt_server.features.notifications.settings import NotificationSettings
from crdt_server.features.notifications.tables import (
    NOTICE_COLUMNS,
    NOTIFICATION_COLUMNS,
    Count,
    Notice,
    Notification,
    UnreadNotice,
)
from crdt_server.features.people import Member
from crdt_server.storage import FeatureRow, Gateway
from crdt_server.storage.gateway import Sql, Tx, rows_as
from crdt_server.times import rfc3339

__all__ = [
    "OUTBOX_MESSAGE",
    "OutboxQueued",
    "OVERWRITTEN",
    "Notifications",
    "Teller",
    "ThreadNotices",
    "ThreadQuote",
    "Told",
    "erase",
    "mark_read",
    "notice_rows",
    "notify",
    "unread_about",
]

OVERWRITTEN = "overwritten"
"""A notification that a write of yours was lost in a race; its ``conflict`` is the
finding's id (no thread)."""

OUTBOX_MESSAGE = "threads.outbox"
"""The bus message that tells the other processes' mailers that emails were queued (its
name from when the threads feature kept the outbox)."""


class OutboxQueued(BusMessage, frozen=True, tag=OUTBOX_MESSAGE):
    """Emails of the wedding were queued: the mailers look at the outbox now."""

    wedding: str


_MARKS = 500
"""Ids per ``IN (...)`` list (far under both backends' parameter limits)."""


class ThreadQuote(NamedTuple):
    """What an email says of a notification about a thread message."""

    subject: str
    author: str
    body: str
    deleted: bool


class ThreadNotices(Protocol):
    """What the threads feature tells notifications about the threads they name."""

    async def subjects(self, wedding: str, threads: Collection[str]) -> dict[str, str]:
        """The subjects of those of ``threads`` that exist, by id."""
        ...

    async def quote(self, wedding: str, thread: str, message: str) -> ThreadQuote | None:
        """The message a notification is about (``None``: it is gone)."""
        ...


@dataclass(frozen=True, slots=True)
class Told:
    """A notification not about a thread as it is said outside the app: ``title`` (an
    email's subject when it is the only notice in it, a push's title: each kind of notice
    its own, a payment overdue never titled as one due today) and ``text`` (the email's
    line, the start of the push's body)."""

    title: str
    text: str


Teller = Callable[[str, str, Member], Awaitable[str | Told | None]]
"""What says a notification not about a thread outside the app: called with the wedding,
the notification's reference and the recipient (their current directory entry: what is
said is cut to what their role may read now); a bare ``str`` is the text under the
reason's registered title; ``None``: it is gone, say nothing."""


# -- steps other features compose into their transactions -----------------------------------


def notify(
    wedding: str,
    sub: str,
    reason: str,
    thread: str,
    message: str,
    actor: Actor,
    priority: str,
    now: float,
    *,
    email: bool,
) -> Tx[None]:
    """The step that puts a notification in ``sub``'s inbox, and with ``email`` an email
    in the outbox (whoever calls knows the person takes emails)."""
    yield Sql(
        "INSERT INTO {t}notifications (wedding, sub, reason, thread, message,"
        " actor, actor_role, priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (wedding, sub, reason, thread, message, actor.sub, actor.role, priority, now),
    )
    if email:
        yield Sql(
            "INSERT INTO {t}notification_outbox (wedding, sub, reason, thread, message,"
            " priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (wedding, sub, reason, thread, message, priority, now),
        )


def notice_rows(
    wedding: str,
    member: Member | None,
    sub: str,
    reason: str,
    ref: str,
    actor: Actor,
    now: float,
) -> list[FeatureRow]:
    """A notification not about a thread (``reason`` names what, ``ref`` which one), as
    rows to write in the transaction of what caused it: the inbox entry, and the email
    when the person has an address and takes emails."""
    rows = [
        FeatureRow(
            "notifications",
            (
                ("wedding", wedding),
                ("sub", sub),
                ("reason", reason),
                ("thread", ""),
                ("message", ref),
                ("actor", actor.sub),
                ("actor_role", actor.role),
                ("priority", "normal"),
                ("created_at", now),
            ),
        )
    ]
    if member is not None and member.email and member.email_on:
        rows.append(
            FeatureRow(
                "notification_outbox",
                (
                    ("wedding", wedding),
                    ("sub", sub),
                    ("reason", reason),
                    ("thread", ""),
                    ("message", ref),
                    ("priority", "normal"),
                    ("created_at", now),
                ),
            )
        )
    return rows


def unread_about(wedding: str, sub: str, thread: str) -> Tx[list[UnreadNotice]]:
    """The step that finds ``sub``'s unread notifications about ``thread``."""
    return (
        yield from rows_as(
            UnreadNotice,
            "SELECT id, message FROM {t}notifications WHERE wedding = ? AND sub = ?"
            " AND thread = ? AND read = 0",
            wedding,
            sub,
            thread,
        )
    )


def mark_read(wedding: str, sub: str, ids: Sequence[int] | None) -> Tx[int]:
    """The step that marks ``sub``'s notifications read (``None``: all of them); how many
    were unread."""
    if ids is None:
        done = yield Sql(
            "UPDATE {t}notifications SET read = 1 WHERE wedding = ? AND sub = ?"
            " AND read = 0 RETURNING id",
            (wedding, sub),
        )
        return len(done)
    count = 0
    for start in range(0, len(ids), _MARKS):
        chunk = ids[start : start + _MARKS]
        marks = ",".join("?" * len(chunk))
        done = yield Sql(
            "UPDATE {t}notifications SET read = 1 WHERE wedding = ? AND sub = ?"
            f" AND read = 0 AND id IN ({marks}) RETURNING id",
            (wedding, sub, *chunk),
        )
        count += len(done)
    return count


def erase(wedding: str, sub: str) -> Tx[bool]:
    """The step that erases a person from the inbox and the outbox: their notifications,
    their queued emails, and the notifications that name them as who acted; whether
    there was any."""
    gone = 0
    for table in ("notifications", "notification_outbox"):
        deleted: int = yield Sql(
            f"DELETE FROM {{t}}{table} WHERE wedding = ? AND sub = ?", (wedding, sub), count=True
        )
        gone += deleted
    acted: int = yield Sql(
        "DELETE FROM {t}notifications WHERE wedding = ? AND actor = ?",
        (wedding, sub),
        count=True,
    )
    gone += acted
    return gone > 0


# -- the extension -----------------------------------------------------------------------------


class Notifications(Extension):
    """The inbox and the outbox's tables (see the module docstring)."""

    name = "notifications"

    def __init__(self, core: Core) -> None:
        self.db = Gateway.of(core.store)
        self._core = core
        self._threads: ThreadNotices | None = None
        self.outbox_wake = asyncio.Event()
        """Set when email rows were queued here (the mailer waits on it)."""
        self.emails = bool(core.settings.fragment(NotificationSettings).smtp_url)
        """Whether notifications queue email rows: on when this server sends email
        (``CRDT_SERVER_SMTP_URL``, the feature's settings)."""
        self.queued_listeners: list[Callable[[str], None]] = []
        """Told (with the wedding) whenever :meth:`queued` is: notifications of the
        wedding were committed (the push feature looks at the inbox then)."""
        self._tellers: dict[str, tuple[Teller, str]] = {}

    def describe(self, reason: str, says: Teller, title: str) -> None:
        """Say notifications of ``reason`` (not about a thread) outside the app with
        ``says`` (:data:`Teller`); ``title``: theirs when ``says`` gives a bare text
        (each reason its own: a payment reminder once went out titled "A change of yours
        was lost", the one subject every reason without one of its own got)."""
        self._tellers[reason] = (says, title)

    def tells(self, reason: str) -> bool:
        """Whether notifications of ``reason`` are said outside the app (:meth:`describe`)."""
        return reason in self._tellers

    async def tell(self, wedding: str, reason: str, ref: str, member: Member) -> Told | None:
        """A notification not about a thread as its feature says it to ``member`` now
        (``None``: nobody says this reason, or what it was about is gone)."""
        teller = self._tellers.get(reason)
        if teller is None:
            return None
        says, title = teller
        said = await says(wedding, ref, member)
        return Told(title, said) if isinstance(said, str) else said

    def describe_threads(self, threads: ThreadNotices) -> None:
        """Show notifications about threads, as ``threads`` says (the threads feature)."""
        self._threads = threads

    @property
    def threads(self) -> ThreadNotices | None:
        """What says the threads notifications are about (``None``: no threads feature)."""
        return self._threads

    def queued(self, wedding: str) -> None:
        """Emails were committed to the outbox: wake the mailers, here and elsewhere."""
        self.outbox_wake.set()
        for told in self.queued_listeners:
            told(wedding)
        self._core.registry.bus.publish_event(to_event(OutboxQueued(wedding)))

    async def queue_email(self, address: str, subject: str, body: str) -> None:
        """Queue an email to a bare address (not a wedding's member: a sign-in link), sent
        at once by the mailer, with retries (:class:`crdt_server.features.people.MailQueue`).
        Nothing is queued when this server sends no email."""
        if not self.emails:
            return
        # The one header rule (domain_mail): no line break, no control character, capped.
        await self.db.run(_queue_email(address, subject_line(subject), body, clock.now()))
        self.queued("")

    async def forget_address(self, address: str) -> None:
        """Emails still waiting for a bare address (lower case) go: its person was erased
        (:class:`crdt_server.features.people.MailQueue`)."""

        def tx() -> Tx[None]:
            yield Sql("DELETE FROM {t}mail_outbox WHERE LOWER(address) = ?", (address,))

        await self.db.run(tx())

    async def queue_guest_email(
        self,
        wedding: str,
        guest: str,
        address: str,
        *,
        from_name: str,
        subject: str,
        body: str,
        unsubscribe: str,
    ) -> bool:
        """Queue an email to one of the wedding's guests (their RSVP link): ``From`` shows
        ``from_name`` (the couple) before ``CRDT_SERVER_EMAIL_FROM``, and the email carries
        ``unsubscribe`` (a link that works for the guest, also as ``List-Unsubscribe``).
        Whether it was queued (``False``: this server sends no email)."""
        if not self.emails:
            return False
        await self.db.run(
            _queue_guest_email(
                (
                    wedding,
                    guest,
                    address,
                    from_name,
                    subject_line(subject),
                    body,
                    unsubscribe,
                    clock.now(),
                )
            )
        )
        self.queued(wedding)
        return True

    async def notices_after(self, after: int, limit: int) -> list[Notice]:
        """Up to ``limit`` inbox entries of every wedding with an id over ``after``, in
        id order (the push feature follows the inbox with them)."""
        return await self.db.fetch_as(
            Notice,
            f"SELECT {NOTICE_COLUMNS} FROM {{t}}notifications WHERE id > ? ORDER BY id LIMIT ?",
            after,
            limit,
        )

    async def notice(self, id_: int) -> Notice | None:
        """One inbox entry by its id (``None``: read and gone, or erased)."""
        return await self.db.fetch_one_as(
            Notice, f"SELECT {NOTICE_COLUMNS} FROM {{t}}notifications WHERE id = ?", id_
        )

    async def last_notice(self) -> int:
        """The id of the newest inbox entry (0: none)."""
        row = await self.db.fetch_one_as(Count, "SELECT COALESCE(MAX(id), 0) FROM {t}notifications")
        return 0 if row is None else int(row.count)

    async def on_guest_erased(self, wedding: str, guest_id: str) -> None:
        def tx() -> Tx[None]:
            yield Sql(
                "DELETE FROM {t}guest_mail WHERE wedding = ? AND guest = ?", (wedding, guest_id)
            )

        await self.db.run(tx())

    async def notifications(
        self, wedding: str, sub: str, *, unread_only: bool, after: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], int, int | None]:
        """A page of ``sub``'s inbox, newest first: (items, unread count, the cursor of
        the next page). Notifications about threads that are gone are not shown."""
        items: list[dict[str, Any]] = []
        following: int | None = None
        cursor = after
        while len(items) < limit:
            sql = (
                f"SELECT {NOTIFICATION_COLUMNS} FROM {{t}}notifications"
                " WHERE wedding = ? AND sub = ?"
            )
            params: list[Any] = [wedding, sub]
            if unread_only:
                sql += " AND read = 0"
            if cursor is not None:
                sql += " AND id < ?"
                params.append(cursor)
            page = await self.db.fetch_as(
                Notification, sql + " ORDER BY id DESC LIMIT ?", *params, limit
            )
            named = {n.thread for n in page if n.thread}
            subjects = (
                await self._threads.subjects(wedding, named)
                if named and self._threads is not None
                else {}
            )
            for notice in page:
                if notice.thread and notice.thread not in subjects:
                    continue  # about a thread that is gone (or no threads feature)
                items.append(_item(notice, subjects.get(notice.thread)))
                if len(items) == limit:
                    following = int(notice.id)
                    break
            if len(page) < limit:
                break
            cursor = int(page[-1].id)
        unread = await self.db.fetch_one_as(
            Count,
            "SELECT COUNT(*) FROM {t}notifications WHERE wedding = ? AND sub = ? AND read = 0",
            wedding,
            sub,
        )
        return items, 0 if unread is None else int(unread.count), following

    async def read_notifications(self, wedding: str, sub: str, ids: list[int] | None) -> int:
        """Mark ``sub``'s notifications read (``None``: all); how many were unread."""
        return await self.db.run(mark_read(wedding, sub, ids))

    async def on_member_erased(self, wedding: str, sub: str) -> bool:
        """Erase a person from the inbox and the outbox (:func:`erase`)."""
        return await self.db.run(erase(wedding, sub))


def queued_email(address: str, subject: str, body: str, now: float) -> Tx[None]:
    """The step that queues an email to a bare address in the outbox (the subject through
    the one header rule); a running server's mailer sends it (it looks every few
    seconds), e.g. after ``crdt-server wedding create``."""
    yield from _queue_email(address, subject_line(subject), body, now)


def _queue_email(address: str, subject: str, body: str, now: float) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}mail_outbox (address, subject, body, created_at) VALUES (?, ?, ?, ?)",
        (address, subject, body, now),
    )


def queued_guest_email(
    wedding: str,
    guest: str,
    address: str,
    *,
    from_name: str,
    subject: str,
    body: str,
    unsubscribe: str,
    now: float,
) -> Tx[None]:
    """The step that queues an email to one of the wedding's guests, as
    :meth:`Notifications.queue_guest_email` does, in the caller's transaction (a scheduled
    reminder's, so it is queued once). Only when this server sends email
    (``Notifications.emails``), which the caller checks; after the commit it calls
    ``Notifications.queued(wedding)`` to wake the mailers."""
    row = (wedding, guest, address, from_name, subject_line(subject), body, unsubscribe, now)
    yield from _queue_guest_email(row)


def _queue_guest_email(row: tuple[str, str, str, str, str, str, str, float]) -> Tx[None]:
    yield Sql(
        "INSERT INTO {t}guest_mail (wedding, guest, address, from_name, subject, body,"
        " unsubscribe, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        row,
    )


def _item(n: Notification, subject: str | None) -> dict[str, Any]:
    return {
        "id": str(n.id),
        "reason": n.reason,
        "thread": {"id": n.thread, "subject": subject} if n.thread else None,
        "message": n.message if n.thread else None,
        **({"conflict": n.message} if n.reason == OVERWRITTEN else {}),
        # What a notification not about a thread is about, in its reason's terms (a
        # payment's id for ``payment_due``, a task's id for ``task.due``).
        **({"ref": n.message} if not n.thread else {}),
        "actor": {"sub": n.actor, "role": n.actor_role},
        "priority": n.priority,
        "created_at": rfc3339(float(n.created_at)),
        "read": bool(n.read),
    }
