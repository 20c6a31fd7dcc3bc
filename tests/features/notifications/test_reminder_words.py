"""What a reminder says outside the app, as pure wording: a payment's and a task's
reminders overdue, due today, tomorrow or in so many days, each titled its own way (an
email's subject, a push's title), a payment with its amount in the budget's currency; and
an email of several notices titled by its first reminder, never as thread messages. The
same words through a real server, SMTP and push: ``test_reminders_said.py``."""

from __future__ import annotations

from crdt_server.documents.schema import Payment
from crdt_server.features.notifications.extension_mail import _subject
from crdt_server.features.payments import told
from crdt_server.features.tasks import told as task_told


def payment(due: str, vendor: str | None) -> Payment:
    return Payment("p1", 150_000, "c1", None, None, vendor, None, due, "scheduled")


def test_a_payment_reminder_says_which_it_is_with_the_amount() -> None:
    kinds = {
        days: told(payment("2031-06-09", "Petal Co."), "Flowers", "EUR", days)
        for days in (-1, 0, 1, 8)
    }
    assert [t.title for t in kinds.values()] == [
        "Payment overdue: 1,500.00 EUR to Petal Co.",
        "Payment due today: 1,500.00 EUR to Petal Co.",
        "Payment due tomorrow: 1,500.00 EUR to Petal Co.",
        "Payment due in 8 days: 1,500.00 EUR to Petal Co.",
    ]
    assert kinds[8].text == (
        "A payment of 1,500.00 EUR to Petal Co. (Flowers) is due in 8 days, on 2031-06-09."
    )
    # A currency without decimals, no vendor: named by its category.
    yen = told(payment("2031-06-09", None), "Venue", "JPY", 0)
    assert yen.title == "Payment due today: 150,000 JPY for Venue"
    assert yen.text == "A payment of 150,000 JPY (Venue) is due today (2031-06-09)."


def test_a_task_reminder_says_which_it_is_with_the_title() -> None:
    assert [task_told("Book the band", "2031-06-09", d).title for d in (-3, 0, 1, 5)] == [
        "Task overdue: Book the band",
        "Task due today: Book the band",
        "Task due tomorrow: Book the band",
        "Task due in 5 days: Book the band",
    ]
    assert task_told("Book the band", "2031-06-09", -3).text == (
        "A task is overdue (it was due on 2031-06-09): Book the band."
    )
    assert task_told("Book the band", "2031-06-09", 5).text == (
        "A task is due in 5 days, on 2031-06-09: Book the band."
    )
    assert task_told("Book the band", None, 0).title == "Task to do: Book the band"


def test_an_email_of_several_notices_is_titled_by_the_first_reminder() -> None:
    title = "Payment overdue: 1,500.00 EUR to Petal Co."
    assert _subject([], [title]) == title
    assert _subject(["Band"], [title, "Task due today: Book the band"]) == f"{title}, and 2 more"
    # Thread messages alone keep their subjects.
    assert _subject(["Band"], []) == "New in \u201cBand\u201d"
    assert _subject(["Band", "Cake"], []) == "2 new messages in your wedding threads"
