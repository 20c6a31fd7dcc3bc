"""The calendars' pure rules: the credentials key ring (parsing, sealing, what does not
open), scopes, and a timeline item as a VEVENT in the wedding's zone, read back."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crdt_server.documents.schema import TimelineItem
from crdt_server.features.calendars.domain import (
    CredentialsError,
    KeyRing,
    Scope,
    parse_scope,
    read_times,
    render_event,
)
from crdt_server.features.calendars.settings import CalendarSettings
from crdt_server.settings import SettingsError

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER = base64.urlsafe_b64encode(bytes(range(1, 33))).decode().rstrip("=")
LISBON = ZoneInfo("Europe/Lisbon")


def test_a_ring_seals_under_its_first_key_and_opens_with_any() -> None:
    ring = KeyRing.parse(f"new:{OTHER}, old:{KEY}")
    assert ring is not None and ring.current == "new" and list(ring.keys) == ["new", "old"]
    kid, sealed = ring.seal("s3cret pässword", "cd_1")
    assert kid == "new" and "s3cret" not in sealed
    assert ring.open(kid, sealed, "cd_1") == "s3cret pässword"
    # A fresh nonce each time: the same password never seals the same way twice.
    assert ring.seal("s3cret pässword", "cd_1")[1] != sealed
    old = KeyRing.parse(f"old:{KEY}")
    assert old is not None
    kid, sealed = old.seal("pw", "cd_1")
    assert ring.open(kid, sealed, "cd_1") == "pw"  # the old key still opens after a rotation


def test_what_does_not_open_says_why_without_the_secret() -> None:
    ring = KeyRing.parse(KEY)
    assert ring is not None and len(ring.current) == 8  # named by its SHA-256
    kid, sealed = ring.seal("pw", "cd_1")
    with pytest.raises(CredentialsError, match="does not decrypt"):
        ring.open(kid, sealed, "cd_2")  # copied to another calendar's row
    raw = bytearray(base64.b64decode(sealed))
    raw[-1] ^= 1
    with pytest.raises(CredentialsError, match="does not decrypt"):
        ring.open(kid, base64.b64encode(bytes(raw)).decode(), "cd_1")
    with pytest.raises(CredentialsError, match="'gone'"):
        ring.open("gone", sealed, "cd_1")


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"short").decode(), "32 bytes, not 5"),
        (f"bad id!:{KEY}", "key id"),
        (f"a:{KEY},a:{OTHER}", "given twice"),
    ],
)
def test_a_malformed_key_stops_the_start_without_showing_it(setting: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says) as refused:
        CalendarSettings(credentials_key=setting)
    assert KEY not in str(refused.value) and OTHER not in str(refused.value)


def test_no_key_is_no_ring_and_the_allowlist_is_folded() -> None:
    settings = CalendarSettings(caldav_allow_hosts=" Nextcloud.LAN, [::1],,127.0.0.1")
    assert settings.key_ring is None
    assert settings.caldav_hosts == {"nextcloud.lan", "::1", "127.0.0.1"}


def test_scopes() -> None:
    assert parse_scope("wedding") == Scope()
    assert parse_scope("vendor:bloom") == Scope("bloom")
    assert str(Scope("bloom")) == "vendor:bloom" and str(Scope()) == "wedding"
    for bad in ("", "vendor:", "vendor:a b", "vendors:bloom", "Wedding", "vendor:" + "x" * 65):
        assert parse_scope(bad) is None, bad


ITEM = TimelineItem(
    "flowers", "Flowers; arch, aisle", "2031-06-13T09:00:00+01:00", "2031-06-13T10:00:00+01:00",
    "Chapel", None, "Bloom", "confirmed", "Peonies\\nwhite", vendor_id="bloom",
)  # fmt: skip


def test_an_item_is_a_vevent_in_the_wedding_zone_and_reads_back() -> None:
    import icalendar

    data = render_event("w1", ITEM, "Europe/Lisbon", datetime(2031, 1, 1, tzinfo=LISBON))
    event = next(iter(icalendar.Calendar.from_ical(data).walk("VEVENT")))
    assert str(event["UID"]) == "w1.flowers@crdt-server"
    assert event["DTSTART"].params["TZID"] == "Europe/Lisbon"
    assert str(event["SUMMARY"]) == "Flowers; arch, aisle" and str(event["STATUS"]) == "CONFIRMED"
    assert b"BEGIN:VTIMEZONE" in data and b"TZID:Europe/Lisbon" in data
    start = datetime(2031, 6, 13, 9, tzinfo=LISBON)
    assert read_times(data, "Europe/Lisbon") == (start, start + timedelta(hours=1))
    # Without a zone: UTC, no VTIMEZONE.
    utc = render_event("w1", ITEM, None, datetime(2031, 1, 1, tzinfo=LISBON))
    assert b"VTIMEZONE" not in utc and b"DTSTART:20310613T080000Z" in utc


def vevent(*lines: bytes) -> bytes:
    body = [b"BEGIN:VCALENDAR", b"BEGIN:VEVENT", b"UID:x", *lines, b"END:VEVENT", b"END:VCALENDAR"]
    return b"\r\n".join(body) + b"\r\n"


def test_floating_all_day_and_broken_events_read_back() -> None:
    floating = vevent(b"DTSTART:20310613T093000", b"DURATION:PT45M")
    start = datetime(2031, 6, 13, 9, 30, tzinfo=LISBON)
    assert read_times(floating, "Europe/Lisbon") == (start, start + timedelta(minutes=45))
    all_day = vevent(b"DTSTART;VALUE=DATE:20310613")
    midnight = datetime(2031, 6, 13, tzinfo=LISBON)
    assert read_times(all_day, "Europe/Lisbon") == (midnight, midnight)
    assert read_times(b"not a calendar", "Europe/Lisbon") is None
    assert read_times(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", None) is None
