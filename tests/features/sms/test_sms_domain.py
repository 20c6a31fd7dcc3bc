"""The text messages' pure rules: numbers, part counting in GSM-7 and UCS-2, cutting,
commands, tokens; and the settings' checks."""

from __future__ import annotations

import time

import pytest

from crdt_server.features.sms.domain import (
    clip,
    dlr_token,
    encoding_of,
    fit_link,
    normal_phone,
    parse_command,
    parts,
    same_token,
)
from crdt_server.features.sms.settings import SmsSettings
from crdt_server.settings import SettingsError

pytestmark = pytest.mark.timeout(30)


def test_numbers_are_e164_of_an_allowed_calling_code() -> None:
    assert normal_phone("+44 7700 900123", ("44",)) == "+447700900123"
    assert normal_phone("0044 (7700) 900-123", ("44", "1")) == "+447700900123"
    assert normal_phone("+33612345678", ("44", "1")) is None  # SMS pumping: not allowed
    for bad in ("07700900123", "+0447700900123", "+44", "+44770090012345678", "+44 77a"):
        assert normal_phone(bad, ("44",)) is None, bad


def test_parts_are_counted_in_the_encoding_the_text_needs() -> None:
    assert encoding_of("Hello {there} €5") == "gsm7"
    assert encoding_of("Zoë and Łukasz") == "ucs2"  # Ł is not in GSM 03.38
    assert parts("a" * 160) == 1 and parts("a" * 161) == 2 and parts("a" * 306) == 2
    assert parts("€" * 80) == 1 and parts("€" * 81) == 2  # two septets each
    assert parts("Ł" * 70) == 1 and parts("Ł" * 71) == 2 and parts("Ł" * 134) == 2
    assert parts("😀" * 35) == 1 and parts("😀" * 36) == 2  # two UTF-16 units each


def test_a_long_text_is_cut_to_its_parts_with_an_ellipsis_in_bounded_time() -> None:
    long = "Ł" * 100_000
    started = time.monotonic()
    cut = clip(long, 1)
    assert time.monotonic() - started < 1.0
    assert parts(cut) == 1 and cut.endswith("...")
    assert clip("short") == "short"


def test_a_link_keeps_its_room_in_one_part_where_it_can_and_is_never_cut() -> None:
    link = "https://plan.example.com/app/?wedding=w1"
    head = 'URGENT Pat in "Ceremony": '
    short = fit_link(head, "Band at noon", link)
    assert short == f"{head}Band at noon {link}" and encoding_of(short) == "gsm7"
    # GSM-7: the words cut to leave the link its room in one part.
    body = "The band arrives at noon, not one. " * 6
    text = fit_link(head, body, link)
    assert parts(text) == 1 and text.startswith(head + body[:60]), text
    assert text.endswith(f"... {link}")
    # UCS-2: 70 units hold the head and the link and hardly a word: two parts then.
    body = "Łukasz moves the band to noon. " * 6
    text = fit_link(head, body, link)
    assert parts(text) == 2 and text.startswith(head + body[:40]), text
    assert text.endswith(f"... {link}")
    ucs2 = fit_link(head, "Łukasz at noon", link)
    assert parts(ucs2) == 2 and ucs2 == f"{head}Łukasz at noon {link}"
    # A head too long to leave the body any room: its words, then the link.
    text = fit_link("Ł" * 300 + ": ", "the words", link)
    assert parts(text) <= 3 and text.endswith(f"... {link}")


def test_commands_of_inbound_texts() -> None:
    assert parse_command(" stop ").kind == "stop"
    assert parse_command("Start").kind == "start"
    assert parse_command("here!").kind == "here"
    late = parse_command("late 20 min")
    assert late.kind == "late" and late.minutes == 20
    assert parse_command("LATE 9999").kind == "say"
    said = parse_command("  running a bit\nlate ")
    assert said.kind == "say" and said.text == "running a bit late"


def test_delivery_report_tokens_are_per_message() -> None:
    key = b"k" * 32
    assert same_token(key, 7, dlr_token(key, 7))
    assert not same_token(key, 8, dlr_token(key, 7))
    assert not same_token(b"x" * 32, 7, dlr_token(key, 7))
    assert not same_token(key, 7, "é\udc80" * 20)  # any string a query may carry


def test_settings_refuse_what_would_send_anywhere() -> None:
    with pytest.raises(SettingsError, match="sms_countries"):
        SmsSettings(sms_url="http://u:p@127.0.0.1:13013/cgi-bin/sendsms")
    with pytest.raises(SettingsError, match="sms_countries"):
        SmsSettings(sms_countries="44,+0x")
    with pytest.raises(SettingsError, match="sms_inbound_secret"):
        SmsSettings(sms_inbound_secret="short")
    with pytest.raises(SettingsError, match="sms_url"):
        SmsSettings(sms_url="ftp://x", sms_countries="44")
    assert SmsSettings(sms_countries="+44, 1").countries == ("44", "1")


def test_the_export_section_reads_numbers_and_refuses_bad_ones_naming_the_field() -> None:
    from crdt_server.errors import ExportError
    from crdt_server.features.sms.export import PHONES

    phone = {"sub": "cam", "phone": "+447700900123", "verified_at": 1.5e9, "stopped": False,
             "mentions": True, "urgent": False, "day": True, "quiet_start": "22:00",
             "quiet_end": "07:00", "zone": "Europe/London"}  # fmt: skip
    [row] = PHONES.rows({"phones": [phone]}, "w9")
    values = dict(row.values)
    assert row.table == "sms_phones" and values["wedding"] == "w9"
    assert values["phone"] == "+447700900123" and values["mentions"] == 1
    assert values["pending"] == "" and values["code_hash"] == ""  # no code is carried
    for change, field in (
        ({"phone": "07700900123"}, "sms.phones[0].phone"),
        ({"sub": ""}, "sms.phones[0].sub"),
        ({"stopped": "no"}, "sms.phones[0].stopped"),
        ({"zone": "Mars/Olympus"}, "sms.phones[0].quiet_start"),
        ({"extra": 1}, "sms.phones[0]"),
    ):
        with pytest.raises(ExportError) as refused:
            PHONES.rows({"phones": [phone | change]}, "w9")
        assert refused.value.field == field
