"""The shared vocabulary's one-home helpers: times (``crdt_server.times``), lib0's varuint
writer (``crdt_server.lib0``) and where a request carries its token
(``crdt_server.codec.credentials``). Each replaced copies that must keep their output."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crdt_server.codec.credentials import bearer_token, query_token
from crdt_server.codec.protocol import read_var_uint, write_var_uint
from crdt_server.lib0 import write_var_uint as lib0_write_var_uint
from crdt_server.times import rfc3339

# Unix seconds from 2001 to 2100, with and without a fraction.
SECONDS = st.floats(min_value=1e9, max_value=4.1e9, allow_nan=False, allow_infinity=False)


def test_each_precision_writes_what_its_copy_wrote() -> None:
    at = 1781357400.25  # 2026-06-13T13:30:00.250Z
    assert rfc3339(at) == "2026-06-13T13:30:00.250Z"  # the API's events, threads, webhooks
    assert rfc3339(at, "seconds") == "2026-06-13T13:30:00Z"  # token expiries, the calendar
    assert rfc3339(at, "compact") == "2026-06-13T13:30:00.250Z"  # the export
    assert rfc3339(1781357400.0, "compact") == "2026-06-13T13:30:00Z"
    assert rfc3339(1781357400.0) == "2026-06-13T13:30:00.000Z"


@given(SECONDS)
def test_the_precisions_agree_with_the_replaced_formatters(at: float) -> None:
    moment = datetime.fromtimestamp(at, UTC)
    events = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert rfc3339(at) == events
    assert rfc3339(at, "seconds") == moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # the web app's
    calendar = datetime.fromtimestamp(int(at), UTC).isoformat().replace("+00:00", "Z")
    assert rfc3339(int(at), "seconds") == calendar  # whole seconds first, as it did
    assert rfc3339(at, "compact") == events.replace(".000Z", "Z")  # the export's


@given(st.integers(min_value=0, max_value=2**53))
def test_one_varuint_writer_for_the_codecs_and_the_domain(value: int) -> None:
    assert write_var_uint is lib0_write_var_uint
    encoded = write_var_uint(value)
    assert read_var_uint(encoded, 0) == (value, len(encoded))


def test_a_negative_varuint_is_refused() -> None:
    with pytest.raises(ValueError):
        lib0_write_var_uint(-1)


@pytest.mark.parametrize(
    ("query", "header", "token"),
    [
        (None, "Bearer abc", "abc"),
        ("q", "bearer  abc ", "abc"),  # the header wins; its scheme in any case
        ("q", None, "q"),
        ("q", "Basic abc", "q"),
        ("q", "Bearer ", "q"),
        (None, None, None),
        ("", None, None),
    ],
)
def test_the_bearer_header_wins_over_the_token_parameter(
    query: str | None, header: str | None, token: str | None
) -> None:
    assert bearer_token(query, header) == token


def test_the_last_token_parameter_wins() -> None:
    assert query_token("token=a&x=1&token=b") == "b"
    assert query_token("x=1") is None
    assert query_token("token=") == ""
