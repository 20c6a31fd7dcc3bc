"""What a projection holds: a wedding document through an allowlist of fields (pure).

:func:`mirror` makes a target document (the projection, written with the server's own
client id) hold what a reader with some hidden fields may see of a source document, with the
smallest changes it can: only the schema's collections, ``meta`` and its maps of fields (the
budget's ``settings``, the timeline's ``profile``, the guests' ``menu``) are copied, and of each
entry only the schema's fields that are not hidden. Unknown roots (the run of show's
``Y.XmlFragment`` included), unknown fields and nested shared types other than ``Y.Text`` are
never copied; a ``Y.Text`` field that is allowed is mirrored by the smallest splice that
makes its string equal (formatting attributes are not copied). Whatever the target holds that
the source no longer does is deleted, so the projection follows removals and erasure too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from pycrdt import Array, Doc, Map, Text

from crdt_server.documents.model import BUDGET_SETTINGS, ID_PATTERN, MENU, PROFILE
from crdt_server.documents.schema import ENTITIES, META, ROOTS
from crdt_server.documents.texts import apply_splice, smallest_splice

__all__ = ["allowlist", "mirror"]

_META_FIELDS = frozenset({"schema", "kind", "wedding_id"})
_PLAIN = str | int | float | bool | list | dict  # type: ignore[type-arg]


def allowlist(kind: str, hidden: Collection[str]) -> dict[str, frozenset[str]]:
    """Root -> the fields a reader with ``hidden`` fields may see of each of its entries
    (``meta``, the budget's ``settings`` and the timeline's ``profile`` are maps of fields
    themselves)."""
    roots: dict[str, frozenset[str]] = {META: _META_FIELDS}
    for entity in ENTITIES.get(kind, ()):
        roots[entity.collection] = frozenset(f.name for f in entity.fields) - set(hidden)
    if kind == "budget":
        roots["settings"] = frozenset(f.name for f in BUDGET_SETTINGS) - set(hidden)
    if kind == "timeline":
        roots["profile"] = frozenset(f.name for f in PROFILE) - set(hidden)
    if kind == "guests":
        roots["menu"] = frozenset(f.name for f in MENU) - set(hidden)
    return roots


_FLAT_ROOTS = frozenset({META, "settings", "profile", "menu"})
"""Roots whose keys are fields (not entries keyed by id)."""


def mirror(
    source: Doc[Any],
    target: Doc[Any],
    kind: str,
    hidden: Collection[str],
    entries: Iterable[tuple[str, str]] | None = None,
) -> None:
    """Make ``target`` hold ``source`` through :func:`allowlist`, in one transaction of
    ``target`` (nothing is written where they already agree). ``entries``: only these
    ``(root, id)`` need a look (what an update touched); ``None``: every entry."""
    fields = allowlist(kind, hidden)
    if kind not in ROOTS:
        return
    with target.transaction(origin="projection"):
        if entries is None:
            for root, allowed in fields.items():
                src, dst = source.get(root, type=Map), target.get(root, type=Map)
                if root in _FLAT_ROOTS:
                    _mirror_fields(src, dst, allowed)
                else:
                    _mirror_collection(src, dst, allowed)
            return
        for root, key in entries:
            only = fields.get(root)
            if only is None:
                continue
            src, dst = source.get(root, type=Map), target.get(root, type=Map)
            if root in _FLAT_ROOTS:
                _mirror_fields(src, dst, only)
            else:
                _mirror_entry(src, dst, key, only)


def _mirror_collection(src: Map[Any], dst: Map[Any], allowed: frozenset[str]) -> None:
    keys = set(src.keys())
    for key in [k for k in dst.keys() if k not in keys]:
        del dst[key]
    for key in keys:
        _mirror_entry(src, dst, key, allowed)


def _mirror_entry(src: Map[Any], dst: Map[Any], key: str, allowed: frozenset[str]) -> None:
    value = src.get(key) if ID_PATTERN.fullmatch(key) else None
    if isinstance(value, Map):
        entry = dst.get(key)
        if not isinstance(entry, Map):
            entry = dst[key] = Map()
        _mirror_fields(value, entry, allowed)
    elif isinstance(value, dict):  # an atomic entry (a seat assignment): its allowed keys
        wanted = {k: v for k, v in value.items() if k in allowed}
        if dst.get(key) != wanted:
            dst[key] = wanted
    elif key in dst:
        del dst[key]


def _mirror_fields(src: Map[Any], dst: Map[Any], allowed: frozenset[str]) -> None:
    # One read of each side (every lookup of a key crosses into pycrdt).
    wanted = {
        name: value
        for name, value in src.items()
        if name in allowed and value is not None and isinstance(value, Text | _PLAIN)
    }
    have = dict(dst.items())
    for name in [k for k in have if k not in wanted]:
        del dst[name]
    for name, value in wanted.items():
        current = have.get(name)
        if isinstance(value, Text):
            text = str(value)
            if isinstance(current, Text):
                old = str(current)
                if old != text:
                    apply_splice(current, smallest_splice(old, text), old)
            else:
                dst[name] = Text(text)
        elif isinstance(current, Text | Map | Array) or current != value:
            dst[name] = value
