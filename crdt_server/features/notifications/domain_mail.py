"""The headers of every email the server sends, built one way (pure).

Names people typed (a person's, a couple's) reach an email's headers only inside the
``Subject`` and as the display names of ``From`` and ``Reply-To``, always through one rule
(:func:`crdt_server.names.header_name`, which :func:`display_name` applies and every
feature that names someone in a subject applies where it makes it): control characters
(line breaks included, so no header can be injected) and ``<>@,;:"`` are removed, runs of
spaces folded and the length capped. A whole ``Subject`` (a thread's subject in it is a
subject, kept as typed) goes through :func:`subject_line`: no control characters, one
line, capped. The standard library then writes non-ASCII text RFC 2047-encoded. The
address in ``From`` is always ``CRDT_SERVER_EMAIL_FROM`` (:func:`envelope`'s ``sender``):
a name can never choose it.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage

from crdt_server.names import header_name

__all__ = ["MAX_DISPLAY_NAME", "MAX_SUBJECT", "display_name", "envelope", "subject_line"]

MAX_DISPLAY_NAME = 64
"""Characters of a display name kept (``From``/``Reply-To``)."""
MAX_SUBJECT = 150
"""Characters of a subject kept."""


def _printable(value: str) -> str:
    kept = (" " if ch.isspace() else ch for ch in value if ch.isspace() or ch.isprintable())
    return " ".join("".join(kept).split())


def subject_line(value: str) -> str:
    """``value`` as a one-line ``Subject``: no control characters, spaces folded, at most
    :data:`MAX_SUBJECT` characters. A person's or a couple's name in it has been through
    :func:`crdt_server.names.header_name` already (where the subject is made); a
    thread's subject is a subject, kept as typed."""
    line = _printable(value)
    return line if len(line) <= MAX_SUBJECT else line[: MAX_SUBJECT - 1].rstrip() + "\u2026"


def display_name(value: str) -> str:
    """``value`` as the display name of an address header: no control characters, none of
    ``<>@,;:"``, spaces folded, at most :data:`MAX_DISPLAY_NAME` characters."""
    return header_name(value, MAX_DISPLAY_NAME)


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
