"""Times as the API, the feeds and the export write them: RFC 3339 UTC strings.

The one home of the formatting every route, feed, log line and export shares (shared
vocabulary: it imports nothing of the project).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

__all__ = ["Precision", "rfc3339"]

Precision = Literal["milliseconds", "seconds", "compact"]
"""``milliseconds``: always three digits (``2026-06-13T13:30:00.000Z``, the API's events,
threads, webhooks...); ``seconds``: whole seconds, truncated (``2026-06-13T13:30:00Z``,
token expiries and the calendar feed); ``compact``: milliseconds, left out when they are
zero (the export format)."""


def rfc3339(at: float, precision: Precision = "milliseconds") -> str:
    """Unix seconds ``at`` as an RFC 3339 UTC time ending in ``Z``."""
    moment = datetime.fromtimestamp(at, UTC)
    spec = "seconds" if precision == "seconds" else "milliseconds"
    text = moment.isoformat(timespec=spec).replace("+00:00", "Z")
    if precision == "compact":
        text = text.replace(".000Z", "Z")
    return text
