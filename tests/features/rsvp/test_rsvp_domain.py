"""RSVP codes and deadlines, pure: a code verifies only at its household's version, cannot
be moved to another household or wedding, and the deadline closes at the end of its day."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crdt_server.features.rsvp.domain import (
    MAX_CODE,
    closes_at,
    mint_code,
    parse_code,
    verify_code,
)

KEY = b"k" * 32


def verifies(code: str, version: int, key: bytes = KEY) -> bool:
    parsed = parse_code(code)
    return parsed is not None and verify_code(key, parsed, version)


def test_a_code_verifies_at_its_version_only() -> None:
    code = mint_code(KEY, "w1", "h1", 0)
    assert verifies(code, 0)
    assert not verifies(code, 1), "revoked: the version went up"
    assert not verifies(code, 0, b"x" * 32), "another store's secret"
    assert mint_code(KEY, "w1", "h1", 0) == code, "derived, the same every time"


def test_a_code_cannot_be_moved_to_another_household_or_wedding() -> None:
    wedding, household, mac = mint_code(KEY, "w1", "h1", 0).split(".")
    assert not verifies(f"{wedding}.h2.{mac}", 0)
    assert not verifies(f"w2.{household}.{mac}", 0)
    assert not verifies(f"{wedding}.{household}.{mac[:-1]}A", 0) or mac.endswith("A")


@pytest.mark.parametrize(
    "code",
    [
        "",
        "w1.h1",
        "w1.h1.short",
        "w1..AAAAAAAAAAAAAAAAAAAAAA",
        "-w.h1." + "A" * 22,
        "w1.h1." + "A" * 23,
        "w1.h/1." + "A" * 22,
        "x" * (MAX_CODE + 1),
        "w1.h1.AAAAAAAAAAAAAAAAAAAAA\n",
    ],
)
def test_malformed_codes_are_not_codes(code: str) -> None:
    assert parse_code(code) is None


def test_the_deadline_closes_at_the_end_of_its_day() -> None:
    assert closes_at(None) is None and closes_at("") is None and closes_at("soon") is None
    assert closes_at("2026-06-01") == datetime(2026, 6, 2, tzinfo=UTC)
    paris = closes_at("2026-06-01", "Europe/Paris")
    assert paris is not None and paris.astimezone(UTC) == datetime(2026, 6, 1, 22, tzinfo=UTC)
    assert closes_at("2026-06-01", "Nowhere/Else") == datetime(2026, 6, 2, tzinfo=UTC)
    assert closes_at("2026-06-01T12:00:00Z") == datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_guest_is_not_a_role_a_token_may_carry() -> None:
    from crdt_server.auth.permissions import ROLES
    from crdt_server.auth.tokens import TokenCodec, TokenError

    codec = TokenCodec(algorithms=["HS256"], secret=b"s" * 32)
    assert "guest" not in ROLES
    with pytest.raises(TokenError):
        codec.mint(sub="guest:g1", role="guest", wedding="w1")


def test_a_guest_ranks_first_in_the_conflicts_hierarchy() -> None:
    from crdt_server.actor import Actor
    from crdt_server.features.conflicts.domain_resolution import rank

    guest, couple = Actor("guest:g1", "guest"), Actor("ada", "couple")
    assert rank(guest) < rank(couple) < rank(Actor("x", "integration")) == rank(None)


def test_a_reminder_goes_days_before_the_deadline_at_ten_in_the_weddings_zone() -> None:
    from crdt_server.features.rsvp.domain import reminder_at

    new_york = reminder_at("2031-04-01", "America/New_York", 7)
    assert new_york == datetime(2031, 3, 25, 14, 0, tzinfo=UTC)  # 10:00 EDT
    assert reminder_at("2031-04-01", None, 7) == datetime(2031, 3, 25, 10, 0, tzinfo=UTC)
    assert reminder_at("2031-04-01", "Not/AZone", 7) == datetime(2031, 3, 25, 10, 0, tzinfo=UTC)
    at_six = reminder_at("2031-04-01T18:00:00+02:00", None, 7)
    assert at_six == datetime(2031, 3, 25, 16, 0, tzinfo=UTC)
    for bad in (None, "", "2031-13-01", "soon", 20310401, "0001-01-03"):
        assert reminder_at(bad, "UTC", 7) is None
