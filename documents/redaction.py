"""Findings as a reader who may not read some fields sees them: the same findings, without
the values of those fields.

A role that reads a document but not all of its fields (a vendor reads the guest list, not a
guest's contact) still counts every finding about that document, so the app's banner agrees
across roles; what it must not see is a hidden field's value, which two kinds of finding
quote:

- a schema finding about the field (``guests.invalid_entry`` on ``guests/guests/g1/contact``
  says "it must be a string, got 7700900123"): shown naming the field, not the value;
- a concurrent edit of the field (``lost`` and ``kept`` carry the two values): shown with
  each side's actor and time, without its ``value``; an edit of a whole entry shows the
  entry's other fields.

Pure: the caller says which fields are hidden (the permission matrix decides that).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from .model import Conflict

__all__ = ["conflict_for_reader", "finding_for_reader"]

_INVALID = ".invalid_entry"
_QUOTED = ": it "
"""Where a schema message about one field starts quoting what is stored there
(``Guest 'g1' has an invalid contact: it must be a string, got 7700900123.``)."""
_NOT_AN_OBJECT = ", not an object."
"""How a schema message about a whole entry ends after quoting what is stored instead."""


def conflict_for_reader(conflict: Conflict, hidden: Collection[str]) -> Conflict:
    """``conflict`` for a reader who may not read the ``hidden`` fields of its document: a
    schema finding about one of them names the field without quoting its value."""
    if not hidden or not conflict.code.endswith(_INVALID) or len(conflict.paths) != 1:
        return conflict
    parts = conflict.paths[0].split("/")
    message = conflict.message
    if len(parts) >= 4 and parts[3] in hidden and _QUOTED in message:
        message = message.split(_QUOTED, 1)[0] + "."
    elif len(parts) == 3 and message.endswith(_NOT_AN_OBJECT):
        # The entry itself is not a map: what it holds instead may be any of its values.
        where = message.split(" is ", 1)[0]
        message = f"{where} is not an object."
    else:
        return conflict
    return Conflict(conflict.code, conflict.paths, message)


def finding_for_reader(finding: Mapping[str, Any], hidden: Collection[str]) -> dict[str, Any]:
    """A concurrent edit (as the conflicts API, the conflicts room or a ``conflict.*``
    event shows it: ``path`` from the root, ``lost`` and ``kept`` with their ``value``) for
    a reader who may not read the ``hidden`` fields of its document: a side whose value is
    such a field's keeps its actor and time, not its ``value``; a whole entry's value
    loses those fields. Anything else is returned as it is (a copy)."""
    shown = dict(finding)
    path = finding.get("path")
    if not hidden or not isinstance(path, list) or len(path) < 2:
        return shown
    field = path[2] if len(path) > 2 else None
    for side in ("lost", "kept"):
        one = finding.get(side)
        if not isinstance(one, Mapping) or "value" not in one:
            continue
        value = one["value"]
        cut = dict(one)
        if field is None and isinstance(value, Mapping):
            cut["value"] = {k: v for k, v in value.items() if k not in hidden}
        elif field is None or field in hidden:
            # A field the reader may not read, or an entry that is not a map (it may hold
            # anything, that field included).
            del cut["value"]
        shown[side] = cut
    return shown
