"""The headers of every email the server sends, built one way (pure).

Names people typed (a couple's, a wedding's, a thread's subject) reach an email only as
the ``Subject`` and as the display names of ``From`` and ``Reply-To``, always through
these functions: control characters (line breaks included, so no header can be
injected) and ``<>@,;:"`` are removed, runs of spaces folded and the length capped; the
standard library then writes non-ASCII text RFC 2047-encoded. The address in ``From`` is
always ``CRDT_SERVER_EMAIL_FROM`` (:func:`envelope`'s ``sender``): a name can never
choose it.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage

__all__ = ["MAX_DISPLAY_NAME", "MAX_SUBJECT", "display_name", "envelope", "subject_line"]

MAX_DISPLAY_NAME = 64
"""Characters of a display name kept (``From``/``Reply-To``)."""
MAX_SUBJECT = 150
"""Characters of a subject kept."""
_UNSAFE_IN_NAMES = frozenset('<>@,;:"')


def _printable(value: str, *, drop: frozenset[str] = frozenset()) -> str:
    kept = (
        " " if ch.isspace() else ch
        for ch in value
        if ch.isspace() or (ch.isprintable() and ch not in drop)
    )
    return " ".join("".join(kept).split())


def subject_line(value: str) -> str:
    """``value`` as a one-line ``Subject``: no control characters, spaces folded, at most
    :data:`MAX_SUBJECT` characters."""
    line = _printable(value)
    return line if len(line) <= MAX_SUBJECT else line[: MAX_SUBJECT - 1].rstrip() + "\u2026"


def display_name(value: str) -> str:
    """``value`` as the display name of an address header: no control characters, none of
    ``<>@,;:"``, spaces folded, at most :data:`MAX_DISPLAY_NAME` characters."""
    name = _printable(value, drop=_UNSAFE_IN_NAMES)
    return name[:MAX_DISPLAY_NAME].rstrip()


def envelope(
    sender: str,
    to: str,
    subject: str,
    *,
    from_name: str | None = None,
    reply_to: str | None = None,
    reply_to_name: str | None = None,
) -> EmailMessage:
    """A new email's headers: ``From`` is ``sender`` (``CRDT_SERVER_EMAIL_FROM``, an
    operator's setting) with ``from_name`` as its display name, ``Subject`` and the
    display names sanitised (see the module docstring). ``to`` and ``reply_to`` are
    addresses the server checked (a member's email)."""
    email = EmailMessage()
    email["From"] = Address(display_name=display_name(from_name or ""), addr_spec=sender)
    email["To"] = to
    if reply_to is not None:
        email["Reply-To"] = Address(
            display_name=display_name(reply_to_name or ""), addr_spec=reply_to
        )
    email["Subject"] = subject_line(subject)
    return email
