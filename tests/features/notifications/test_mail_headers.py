"""The headers of every email the server sends (``domain_mail``): names people typed reach
only the ``Subject`` and the display names of ``From``/``Reply-To``, sanitised and RFC
2047-encoded; the ``From`` address is always ``CRDT_SERVER_EMAIL_FROM``. Checked on the
function and on a real email through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from crdt_server.auth.principals import Principal
from crdt_server.features.invitations.routes import _invitation_email
from crdt_server.features.invitations.tables import InvitationRow
from crdt_server.features.notifications import NotificationSettings, envelope
from crdt_server.features.notifications.domain_mail import (
    MAX_DISPLAY_NAME,
    MAX_SUBJECT,
    display_name,
    subject_line,
)
from crdt_server.features.rsvp.domain import link_subject, reminder_text
from crdt_server.settings import SettingsError
from crdt_server.testing.waits import until
from tests.features.conversations import (
    COUPLE,
    ENV,
    PLANNER,
    VENDOR,
    Inbox,
    W,
    count_emails,
    join,
    ok,
)
from tests.server import ServerProcess

HOSTILE = 'Ann "x" <evil@attacker.example>,\r\nBcc: all@example.com;\x00\x1b:@ Lee'


def parsed(message: email.message.EmailMessage) -> email.message.EmailMessage:
    """What a receiver reads back of ``message``'s bytes."""
    back = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(back, email.message.EmailMessage)
    return back


def test_names_never_leave_their_headers() -> None:
    message = envelope(
        "plans@example.com",
        "cam@example.com",
        HOSTILE,
        from_name=HOSTILE,
        reply_to="pat@example.com",
        reply_to_name=HOSTILE,
    )
    back = parsed(message)
    assert back["From"].addresses[0].addr_spec == "plans@example.com"
    assert back["Reply-To"].addresses[0].addr_spec == "pat@example.com"
    assert len(back["From"].addresses) == len(back["Reply-To"].addresses) == 1
    assert back["Bcc"] is None and back["To"] == "cam@example.com"
    for header in ("From", "Reply-To"):
        name = back[header].addresses[0].display_name
        assert not set(name) & set('<>@,;:"') and "\n" not in name and "\x00" not in name
    assert "\n" not in str(back["Subject"]) and "\x1b" not in str(back["Subject"])
    assert sorted(back.keys()) == sorted(["From", "To", "Reply-To", "Subject"])


def test_non_ascii_names_are_encoded_and_long_ones_capped() -> None:
    message = envelope(
        "plans@example.com", "cam@example.com", "Hochzeit 💍 " * 50, from_name="Zoë Müller"
    )
    raw = message.as_bytes()
    assert b"=?utf-8?" in raw  # RFC 2047
    back = parsed(message)
    assert back["From"].addresses[0].display_name == "Zoë Müller"
    assert len(str(back["Subject"])) <= MAX_SUBJECT
    assert len(display_name("n" * 10_000)) == MAX_DISPLAY_NAME
    assert subject_line("a\r\nb\tc") == "a b c"


def test_names_in_subjects_lose_what_headers_refuse() -> None:
    """A person's or a couple's name inside a ``Subject`` (an invitation, an RSVP email or
    reminder) loses ``<>@,;:"`` and control characters, as a display name does; the
    subject's own words keep theirs."""
    inviter = Principal("pat", HOSTILE, "planner", can_write=True)
    row = InvitationRow(
        id="i" * 16, wedding="w1", digest="d", role="friend", name=None, email=None,
        documents="", uses=1, uses_left=1, expires_at=86400.0, created_at=0.0,
        inviter="pat", inviter_role="planner", revoked_at=0.0,
    )  # fmt: skip
    subjects = {
        "invitation": _invitation_email(inviter, row, "https://plan.example.com/x")[0],
        "rsvp link": link_subject(HOSTILE),
        "rsvp reminder": reminder_text("Lees", HOSTILE, None, "2030-01-01", "u")[0],
    }
    named = "Ann x evilattacker.example Bcc allexample.com Lee"
    assert subjects == {
        "invitation": f"{named} invited you to plan a wedding",
        "rsvp link": f"{named}: will you come?",
        "rsvp reminder": f"{named}: a reminder to answer by 2030-01-01",
    }
    assert all(subject_line(s) == s for s in subjects.values())


def test_the_from_address_setting_is_one_bare_address() -> None:
    for bad in ("Ann <a@example.com>", "a@example.com\r\nBcc: x@example.com", "no-at", "a b@c"):
        with pytest.raises(SettingsError):
            NotificationSettings(email_from=bad)
    assert NotificationSettings(email_from="plans@example.com").email_from == "plans@example.com"


@pytest.mark.asyncio
async def test_a_hostile_thread_subject_stays_in_the_subject(
    tmp_path: Path, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    env = {
        **ENV,
        "CRDT_SERVER_SMTP_URL": f"smtp://127.0.0.1:{controller.port}",
        "CRDT_SERVER_EMAIL_DIGEST_SECONDS": "0",
        "CRDT_SERVER_EMAIL_FROM": "threads@example.com",
    }
    async with (
        ServerProcess(tmp_path / "data", env=env, anonymous=False) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        await join(http, PLANNER, COUPLE, VENDOR)
        made = await http.post(
            f"{W}/threads",
            json={
                "subject": "Band Bcc: all@example.com From: boss@attacker.example",
                "participants": ["flo"],
            },
            headers=PLANNER,
        )
        tid = (await ok(made, 201))["id"]
        await ok(
            await http.put(
                f"{W}/threads/{tid}/messages/m1", json={"body": "@cam hi"}, headers=VENDOR
            ),
            201,
        )
        await until(lambda: count_emails(inbox, 1))
        sent = inbox.messages[0]
        assert sent["From"].addresses[0].addr_spec == "threads@example.com"
        assert len(sent["From"].addresses) == 1
        assert sent["Bcc"] is None and sent["To"] == "cam@example.com"
        assert "Bcc: all@example.com" in str(sent["Subject"])
