"""Reminders that read right outside the app: a payment overdue, one due today and one due
in three days, and a task due today, each emailed with a subject of its own (never the one
every reminder once had) and a body that says which it is, with the payment's amount in
the budget's currency, its vendor and category, or the task's title; and pushed with the
same title and the start of that body. With a fake clock, on a real server (uvicorn on an
ephemeral port) over SQLite and PostgreSQL, a real SMTP server (aiosmtpd) and a real push
receiver that decrypts each message and checks its VAPID token.

A reminder is said as things stand when it goes out: the payment "due in three days" was
reminded on its day, held (the email by the digest, the push by quiet hours) and moved
three days later meanwhile. The push settings' ``reminders`` turns their pushes off; a
store of the release before it keeps its people's settings and pushes them reminders.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from crdt_server import clock
from crdt_server.app import create_app
from crdt_server.features import fragments_of
from crdt_server.features.payments import FEATURE, PaymentReminders
from crdt_server.features.push.tables import SCHEMA as PUSH_SCHEMA
from crdt_server.features.tasks import KIND as TASK_KIND
from crdt_server.settings import Settings
from crdt_server.storage import DocumentStore, Gateway, PostgresStore, SqliteStore
from crdt_server.storage.gateway import Sql, Tx
from crdt_server.testing.receiver import WebhookReceiver
from crdt_server.testing.waits import until
from tests.features.conversations import Inbox
from tests.features.push.test_push import Browser
from tests.features.recorded import Recorded
from tests.features.test_feature_list import MINT, SECRET, serving

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def database(backend: str, request: pytest.FixtureRequest) -> str:
    """The store's URL: empty for SQLite, a scratch PostgreSQL database."""
    return str(request.getfixturevalue("scratch_postgres")) if backend == "postgres" else ""


START = datetime(2031, 6, 1, 8, 0, tzinfo=UTC)
W = "/api/weddings/w1"
ADDRESS = "cam@example.com"
RECORDED = Recorded(FEATURE, PaymentReminders)


def couple() -> dict[str, str]:
    # Minted when asked: tokens are checked against the (fake) clock.
    return MINT.headers(role="couple", sub="cam", name="Cam", email=ADDRESS)


@dataclass
class Running:
    fake: clock.FakeClock
    client: httpx.AsyncClient
    reminders: PaymentReminders
    mail: Inbox
    receiver: WebhookReceiver
    phone: Browser
    key: str

    async def op(self, doc: str, body: dict[str, Any]) -> None:
        answer = await self.client.post(f"{W}/docs/{doc}/ops", json=body, headers=couple())
        assert answer.status_code == 200, answer.text

    async def pay(self, pid: str, amount: int, category: str, due: str, vendor: str = "") -> None:
        """A payment scheduled for ``due``."""
        body: dict[str, Any] = {"op": "record_payment", "payment_id": pid, "category_id": category}
        body |= {"amount": amount, "due": due, "status": "scheduled"}
        await self.op("budget", body | ({"vendor": vendor} if vendor else {}))
        await self.reminders.settled()

    async def task(self, tid: str, title: str, due: str) -> None:
        """A task due on ``due`` (no owner: the couple is reminded), once its job waits."""
        await self.op("tasks", {"op": "add_task", "task_id": tid, "title": title, "due": due})
        scheduler = self.reminders.scheduler

        async def waiting() -> bool:
            return any(j.status == "pending" for j in await scheduler.jobs("w1", TASK_KIND, tid))

        await until(waiting, deadline=10)

    async def came(self, count: Callable[[], int], n: int) -> None:
        """Wait until ``count()`` reaches ``n``, the clock moving on a second a step: the
        mailer and the push sender look again when their timers fire (one may have gone
        to sleep just before the test moved the clock)."""

        async def reached() -> bool:
            if count() >= n:
                return True
            await self.fake.advance(1.0)
            return False

        await until(reached, deadline=10, every=0.1)

    async def email(self, n: int) -> EmailMessage:
        """The ``n``th email (1 is the first), once it came."""
        await self.came(lambda: len(self.mail.messages), n)
        return self.mail.messages[n - 1]

    async def push(self, n: int) -> dict[str, Any]:
        """The ``n``th push, decrypted."""
        await self.came(lambda: len(self.receiver.received), n)
        got = self.receiver.received[n - 1]
        return self.phone.read(got, self.key, f"http://127.0.0.1:{self.receiver.port}")

    async def push_settings(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = await self.client.put(f"{W}/push-settings", json=body, headers=couple())
        assert answer.status_code == 200, answer.text
        settings: dict[str, Any] = answer.json()
        return settings

    async def reminded(self, ref: str) -> None:
        """Wait until ``ref``'s reminder is in the couple's inbox."""

        async def there() -> bool:
            answer = await self.client.get(f"{W}/notifications", headers=couple())
            return ref in [n.get("ref") for n in answer.json()["notifications"]]

        await until(there, deadline=10)


@asynccontextmanager
async def running(
    tmp_path: Path, smtp: tuple[Any, Inbox], database: str, fake: clock.FakeClock
) -> AsyncIterator[Running]:
    controller, mail = smtp
    env = {
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_DIGEST_SECONDS": "3600",
        "CRDT_SERVER_PUSH_ALLOW_PRIVATE": "true",
        "CRDT_SERVER_PUSH_RETRY_SCHEDULE": "0,0.2",
    }
    settings = Settings.from_env(
        env,
        fragments=fragments_of(RECORDED.features),
        data_dir=tmp_path,
        auth_secret=SECRET,
        database_url=database or None,
    )
    async with (
        WebhookReceiver(default=201) as receiver,
        serving(create_app(settings, features=RECORDED.features)) as client,
    ):
        key = (await client.get("/api/push/vapid-public-key")).json()["key"]
        phone = Browser.at(f"{receiver.url}/phone")
        made = await client.post(f"{W}/push-subscriptions", json=phone.json(), headers=couple())
        assert made.status_code == 201, made.text
        yield Running(fake, client, RECORDED.last, mail, receiver, phone, key)


def said(email: EmailMessage) -> tuple[str, str]:
    """An email's subject and the text above its unsubscribe line."""
    body = email.get_body()
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")
    return str(email["Subject"]), text.split("\n--\n")[0].strip()


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_overdue_due_today_and_due_soon_each_read_their_own_way(
    tmp_path: Path, smtp: tuple[Any, Inbox], database: str
) -> None:
    fake = clock.FakeClock(START)
    with clock.use(fake):
        async with running(tmp_path, smtp, database, fake) as app:
            await app.op("budget", {"op": "set_currency", "currency": "EUR"})
            for cid, name in (("flowers", "Flowers"), ("venue", "Venue"), ("cake", "Cake")):
                await app.op("budget", {"op": "set_category", "category_id": cid, "name": name})

            # Scheduled after its day: reminded at once, as overdue.
            await app.pay("late", 150_000, "flowers", "2031-05-06", vendor="Petal Co.")
            overdue = (
                "Payment overdue: 1,500.00 EUR to Petal Co.",
                "A payment of 1,500.00 EUR to Petal Co. (Flowers) is overdue: it was due on"
                " 2031-05-06 and is not marked paid.",
            )
            assert said(await app.email(1)) == overdue
            pushed = await app.push(1)
            assert (pushed["type"], pushed["title"]) == ("reminder", overdue[0])
            assert pushed["body"].startswith("A payment of 1,500.00 EUR to Petal Co. (Flowers)")
            assert pushed["url"] == "/app/?wedding=w1&inbox=1"
            assert pushed["tag"] == "payment_due:late"

            # On its day, at 09:00 (UTC: the wedding has no zone): due today, no vendor.
            await app.pay("venue", 300_000, "venue", "2031-06-02")
            await fake.set(datetime(2031, 6, 2, 9, 0, tzinfo=UTC))
            today = (
                "Payment due today: 3,000.00 EUR for Venue",
                "A payment of 3,000.00 EUR (Venue) is due today (2031-06-02).",
            )
            assert said(await app.email(2)) == today
            pushed = await app.push(2)
            assert (pushed["title"], pushed["body"]) == today

            # Due soon: reminded on its day while an email went out half an hour before
            # (the digest holds the next one an hour) and in the couple's quiet hours (the
            # push waits), then moved three days later: both say it as it is now.
            quiet = {"start": "08:45", "end": "09:15", "zone": "UTC"}
            shown = await app.push_settings({"quiet_hours": quiet})
            assert shown["reminders"] is True
            await app.pay("cake", 20_000, "cake", "2031-06-03", vendor="Bakery")
            await fake.set(datetime(2031, 6, 3, 8, 30, tzinfo=UTC))
            await app.pay("old", 5_000, "cake", "2031-06-01")  # overdue: at once
            assert said(await app.email(3))[0] == "Payment overdue: 50.00 EUR for Cake"
            assert (await app.push(3))["title"] == "Payment overdue: 50.00 EUR for Cake"
            await fake.set(datetime(2031, 6, 3, 9, 0, tzinfo=UTC))
            await app.reminded("cake")
            update = {"op": "update_payment", "payment_id": "cake", "due": "2031-06-06"}
            await app.op("budget", update)
            await app.reminders.settled()
            soon = (
                "Payment due in 3 days: 200.00 EUR to Bakery",
                "A payment of 200.00 EUR to Bakery (Cake) is due in 3 days, on 2031-06-06.",
            )
            await fake.set(datetime(2031, 6, 3, 9, 16, tzinfo=UTC))  # the quiet hours end
            pushed = await app.push(4)
            assert (pushed["title"], pushed["body"]) == soon
            assert len(app.mail.messages) == 3  # the digest still holds it
            await fake.set(datetime(2031, 6, 3, 9, 31, tzinfo=UTC))  # the digest's hour ends
            assert said(await app.email(4)) == soon

            # A task due today, under its title.
            await app.push_settings({"quiet_hours": None})
            await app.task("tasting", "Taste the cakes", "2031-06-04")
            await fake.set(datetime(2031, 6, 4, 9, 0, tzinfo=UTC))
            task = (
                "Task due today: Taste the cakes",
                "A task is due today (2031-06-04): Taste the cakes.",
            )
            assert said(await app.email(5)) == task
            pushed = await app.push(5)
            assert (pushed["title"], pushed["body"], pushed["tag"]) == (*task, "task.due:tasting")

            # Reminders' pushes turned off: the next reminder is emailed, not pushed (the
            # test notification asked after it is the next push).
            assert (await app.push_settings({"reminders": False}))["reminders"] is False
            await app.task("rings", "Pick up the rings", "2031-06-05")
            await fake.set(datetime(2031, 6, 5, 9, 0, tzinfo=UTC))
            assert said(await app.email(6))[0] == "Task due today: Pick up the rings"
            [mine] = (await app.client.get(f"{W}/push-subscriptions", headers=couple())).json()[
                "subscriptions"
            ]
            tested = await app.client.post(
                f"{W}/push-subscriptions/{mine['id']}/test", headers=couple()
            )
            assert tested.status_code == 202, tested.text
            assert (await app.push(6))["type"] == "test"

            subjects = [str(m["Subject"]) for m in app.mail.messages]
            assert not {"A payment falls due", "A task falls due"} & set(subjects)


async def _written_before(store: DocumentStore) -> None:
    """A person's push settings as the release before ``reminders`` wrote them."""
    await store.open()
    try:
        await store.install(dataclasses.replace(PUSH_SCHEMA, migrations=()))

        def before() -> Tx[None]:
            yield Sql(
                "INSERT INTO {t}push_prefs (wedding, sub, mentions, urgent, emergencies,"
                " quiet_start, quiet_end, zone) VALUES ('w1', 'cam', 0, 1, 1, '22:00',"
                " '07:00', 'UTC')",
                (),
            )

        await Gateway.of(store).run(before())
    finally:
        await store.close()


async def _read_after(store: DocumentStore) -> list[tuple[Any, ...]]:
    """The settings once this release installed its push schema on that store."""
    await store.open()
    try:
        await store.install(PUSH_SCHEMA)
        rows = await Gateway.of(store).fetch("SELECT sub, mentions, reminders FROM {t}push_prefs")
        return [tuple(row) for row in rows]
    finally:
        await store.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_settings_from_before_reminders_push_them(tmp_path: Path, database: str) -> None:
    def store() -> DocumentStore:
        return PostgresStore(database) if database else SqliteStore(tmp_path / "store.sqlite3")

    await _written_before(store())
    assert await _read_after(store()) == [("cam", 0, 1)]
