"""The server's log lines: text, or one JSON object per line; a token in a URL (or an
RSVP link's code in its path) never reaches one, whichever library logs the URL.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from urllib.parse import unquote_plus

__all__ = ["JsonFormatter", "RedactTokens", "configure_logging", "redact_tokens"]


_SECRET_NAMES = frozenset({"token", "access_token"})
# A name=value pair as it appears in a URL or a query string, the "=" possibly
# percent-encoded; the name is judged after percent-decoding (see _secret_name).
_PAIR = re.compile(r"(?P<name>[^\s?&;=\"'<>]+)(?P<eq>=|%3[dD])(?P<value>[^\s&;\"'<>]*)")


def _secret_name(raw: str) -> bool:
    """Whether a query parameter name, once decoded as a server would decode it (repeatedly,
    so that ``%2574oken`` counts too), names a token."""
    name = raw
    for _ in range(4):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    # A decoded name may carry the separator it was hidden behind (%3Ftoken, %26token).
    last = re.split(r"[?&;]", name)[-1]
    return last.strip().lower() in _SECRET_NAMES


# An RSVP link's code is a path segment (/api/rsvp/{code}), its slash maybe encoded.
_RSVP_PATH = re.compile(r"(/api/rsvp(?:/|%2[fF]))[^\s?#\"'<>]+")


def redact_tokens(message: str) -> str:
    """``message`` with the value of every token parameter replaced by ``[redacted]``, and
    an RSVP link's code in a path by ``<redacted>`` (``/api/rsvp/<redacted>``)."""
    if "/api/rsvp" in message:
        message = _RSVP_PATH.sub(r"\1<redacted>", message)
    if "=" not in message and "%3d" not in message.lower():
        return message
    return _PAIR.sub(_redact_pair, message)


def _redact_pair(match: re.Match[str]) -> str:
    value = match["value"]
    # A value may hide a whole encoded query (x=1%26token%3D...): judge it decoded too.
    hidden = "%" in value and redact_tokens(unquote_plus(value)) != unquote_plus(value)
    if _secret_name(match["name"]) or hidden:
        return f"{match['name']}{match['eq']}[redacted]"
    return match[0]


class RedactTokens(logging.Filter):
    """Query tokens never reach a log line, whichever library logs the URL, however the
    parameter's name is percent-encoded."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the error, if any);
    an access log line adds its fields (method, route, status, duration_ms, request_id)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "http", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # The filter runs before the formatter, so JSON lines are redacted too.
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
