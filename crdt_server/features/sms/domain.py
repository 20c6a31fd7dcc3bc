"""Text messages' pure rules: phone numbers (E.164 and the allowed calling codes), how
many parts a text takes (GSM 03.38 7-bit, or UCS-2 when a character needs it), what a
text says, the per-message delivery report token, verification codes, and the commands
an inbound text may carry."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CODE_DIGITS",
    "GSM_BASIC",
    "GSM_EXTENDED",
    "MAX_PARTS",
    "Command",
    "Encoding",
    "clip",
    "code_hash",
    "dlr_token",
    "encoding_of",
    "fit_link",
    "fits",
    "new_code",
    "normal_phone",
    "parse_command",
    "parts",
    "same_token",
]

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The GSM 03.38 default alphabet: one septet each."""
GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
"""The default alphabet's extension table: two septets each (an escape, then the char)."""

Encoding = Literal["gsm7", "ucs2"]

MAX_PARTS = 3
"""The most parts one text may take (a longer one is cut, with an ellipsis)."""
CODE_DIGITS = 6
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def normal_phone(text: str, countries: Sequence[str]) -> str | None:
    """``text`` as an E.164 number (``+`` and 7 to 15 digits; spaces, dots, dashes and
    brackets removed) if its calling code is one of ``countries``; else ``None``."""
    compact = "".join(c for c in text.strip() if c not in " .-()\u00a0")
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not _E164.fullmatch(compact):
        return None
    digits = compact[1:]
    # Calling codes are prefix-free (ITU-T E.164): one match at most.
    if not any(digits.startswith(code) for code in countries):
        return None
    return compact


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the default alphabet or its extension, else
    UCS-2."""
    return "gsm7" if all(c in GSM_BASIC or c in GSM_EXTENDED for c in text) else "ucs2"


def _units(text: str, encoding: Encoding) -> int:
    if encoding == "gsm7":
        return sum(2 if c in GSM_EXTENDED else 1 for c in text)
    return len(text.encode("utf-16-le")) // 2


def parts(text: str) -> int:
    """How many parts ``text`` takes: 160 septets (70 UCS-2 units) in one part, 153 (67)
    in each part of a longer one (the rest is the concatenation header)."""
    encoding = encoding_of(text)
    units = _units(text, encoding)
    single, multi = (160, 153) if encoding == "gsm7" else (70, 67)
    if units <= single:
        return 1
    return -(-units // multi)


def fits(text: str, most: int = 1) -> bool:
    return parts(text) <= most


def clip(text: str, most: int = MAX_PARTS) -> str:
    """``text`` cut (with an ellipsis: ``...`` keeps GSM-7) to at most ``most`` parts."""
    if fits(text, most):
        return text
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with its ellipsis: bounded by len
        mid = (low + high + 1) // 2
        if fits(text[:mid].rstrip() + "...", most):
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + "..."


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(key: bytes, wedding: str, sub: str, phone: str, code: str) -> str:
    """What the store keeps of a verification code (never the code)."""
    message = f"code\0{wedding}\0{sub}\0{phone}\0{code}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def dlr_token(key: bytes, message_id: int) -> str:
    """The token of one text's delivery report URL (Kannel fetches it, not a person)."""
    digest = hmac.new(key, f"dlr\0{message_id}".encode(), hashlib.sha256).hexdigest()
    return digest[:32]


def same_token(key: bytes, message_id: int, token: str) -> bool:
    """Whether ``token`` is the text's (any string: compared as bytes, in constant time)."""
    given = token.encode("utf-8", errors="replace")
    return hmac.compare_digest(dlr_token(key, message_id).encode(), given)


@dataclass(frozen=True, slots=True)
class Command:
    """What an inbound text asks: ``stop``, ``start``, ``here``, ``late`` (``minutes``) or
    ``say`` (anything else: the text)."""

    kind: Literal["stop", "start", "here", "late", "say"]
    minutes: int = 0
    text: str = ""


_STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
_LATE = re.compile(r"^LATE\s+([0-9]{1,3})(\s*(MIN|MINS|MINUTES|M))?$")


def parse_command(text: str) -> Command:
    """The command of an inbound text (case and surrounding spaces ignored)."""
    said = " ".join(text.split())
    word = said.upper().rstrip(".!")
    if word in _STOP:
        return Command("stop")
    if word in ("START", "UNSTOP", "YES"):
        return Command("start")
    if word in ("HERE", "ARRIVED"):
        return Command("here")
    late = _LATE.fullmatch(word)
    if late is not None and 1 <= int(late.group(1)) <= 600:
        return Command("late", minutes=int(late.group(1)))
    return Command("say", text=said)


def _longest(head: str, body: str, tail: str, most: int) -> str:
    """The longest start of ``body`` that fits ``most`` parts between ``head`` and ``...``
    and ``tail`` (a search bounded by ``len(body)``)."""
    low, high = 0, len(body)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(f"{head}{body[:mid].rstrip()}...{tail}", most):
            low = mid
        else:
            high = mid - 1
    return body[:low].rstrip()


def fit_link(head: str, body: str, link: str, least: int = 20) -> str:
    """``head``, ``body`` and `` link`` in as few parts as keep at least ``least``
    characters of the body (one part where it can be: in GSM-7 most of a short message;
    in UCS-2 a link leaves little room), the body cut with an ellipsis; the link is never
    cut."""
    tail = f" {link}"
    whole = f"{head}{body}{tail}"
    for most in range(1, MAX_PARTS + 1):
        if fits(whole, most):
            return whole
        kept = _longest(head, body, tail, most)
        if len(kept) >= min(least, len(body)):
            return f"{head}{kept}...{tail}"
    return f"{clip(head + body, MAX_PARTS - 1)}{tail}"
