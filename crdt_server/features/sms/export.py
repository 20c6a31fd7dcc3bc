"""The ``sms`` section of a wedding export: each member's verified number and what they
chose to be texted (numbers are personal data: the export carries them as it carries
members' email addresses; erasing a member or the wedding removes them).

::

    {"phones": [{"sub", "phone", "verified_at", "stopped", "mentions", "urgent", "day",
                 "quiet_start", "quiet_end", "zone"}]}

Not carried: numbers waiting for their code, and the texts themselves.
"""

from __future__ import annotations

from typing import Any

from crdt_server.auth.tokens import valid_sub
from crdt_server.errors import ExportError
from crdt_server.features.push import valid_hour, zone
from crdt_server.features.sms.domain import normal_phone
from crdt_server.features.sms.tables import PHONE_COLUMNS, SCHEMA, Phone
from crdt_server.storage import DocumentStore, FeatureRow, Gateway, Schema

__all__ = ["PHONES", "PhoneSection"]

_KEYS = frozenset(
    {"sub", "phone", "verified_at", "stopped", "mentions", "urgent", "day", "quiet_start",
     "quiet_end", "zone"}
)  # fmt: skip
_MAX_PHONES = 10_000


class PhoneSection:
    """The ``sms`` section as ``crdt_server.tools.export.Section``."""

    name = "sms"
    schemas: tuple[Schema, ...] = (SCHEMA,)

    async def export(self, store: DocumentStore, wedding: str) -> dict[str, Any]:
        await store.install(SCHEMA)  # a store that never ran the feature: none
        rows = await Gateway.of(store).fetch_as(
            Phone,
            f"SELECT {PHONE_COLUMNS} FROM {{t}}sms_phones WHERE wedding = ? AND phone <> ''"
            " ORDER BY sub",
            wedding,
        )
        return {
            "phones": [
                {
                    "sub": r.sub,
                    "phone": r.phone,
                    "verified_at": r.verified_at,
                    "stopped": bool(r.stopped),
                    "mentions": bool(r.mentions),
                    "urgent": bool(r.urgent),
                    "day": bool(r.day),
                    "quiet_start": r.quiet_start,
                    "quiet_end": r.quiet_end,
                    "zone": r.zone,
                }
                for r in rows
            ]
        }

    def rows(self, data: object, wedding: str) -> list[FeatureRow]:
        """The section as rows of ``wedding``; :class:`ExportError` naming the field."""
        if not isinstance(data, dict) or set(data) - {"phones"}:
            raise ExportError("sms", "must be an object with phones")
        phones = data.get("phones", [])
        if not isinstance(phones, list) or len(phones) > _MAX_PHONES:
            raise ExportError("sms.phones", f"must be a list of at most {_MAX_PHONES}")
        seen: set[str] = set()
        return [
            _phone_row(item, f"sms.phones[{i}]", wedding, seen) for i, item in enumerate(phones)
        ]


def _phone_row(item: object, where: str, wedding: str, seen: set[str]) -> FeatureRow:
    """One exported phone (at ``where``) as its row of ``wedding``; its member's sub must
    not be in ``seen`` (added to it)."""
    if not isinstance(item, dict) or set(item) - _KEYS:
        raise ExportError(where, f"must be an object of {sorted(_KEYS)}")
    sub, phone = item.get("sub"), item.get("phone")
    if not isinstance(sub, str) or not valid_sub(sub) or sub in seen:
        raise ExportError(f"{where}.sub", "must be a member's sub, once")
    seen.add(sub)
    digits = phone[1:4] if isinstance(phone, str) else ""
    if not isinstance(phone, str) or normal_phone(phone, (digits,)) != phone:
        raise ExportError(f"{where}.phone", "must be an E.164 number")
    at = item.get("verified_at")
    if not isinstance(at, (int, float)) or isinstance(at, bool) or not 0 <= at < 2**40:
        raise ExportError(f"{where}.verified_at", "must be a time in seconds")
    flags = []
    for key in ("stopped", "mentions", "urgent", "day"):
        value = item.get(key, key == "day")
        if not isinstance(value, bool):
            raise ExportError(f"{where}.{key}", "must be true or false")
        flags.append(int(value))
    quiet = []
    for key in ("quiet_start", "quiet_end", "zone"):
        value = item.get(key, "")
        if not isinstance(value, str) or len(value) > 64:
            raise ExportError(f"{where}.{key}", "must be a string")
        quiet.append(value)
    if quiet[0] and not (
        valid_hour(quiet[0]) and valid_hour(quiet[1]) and zone(quiet[2]) is not None
    ):
        raise ExportError(f"{where}.quiet_start", "quiet hours: HH:MM, HH:MM, a zone")
    values: dict[str, object] = {
        "wedding": wedding, "sub": sub, "phone": phone, "verified_at": float(at),
        "pending": "", "code_hash": "", "code_expires": 0.0, "tries": 0,
        "stopped": flags[0], "mentions": flags[1], "urgent": flags[2], "day": flags[3],
        "quiet_start": quiet[0], "quiet_end": quiet[1], "zone": quiet[2],
    }  # fmt: skip
    return FeatureRow("sms_phones", tuple(values.items()))


PHONES = PhoneSection()
