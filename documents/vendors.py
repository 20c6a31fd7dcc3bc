"""Who a vendor is: the timeline's vendor directory, and the one key that names a vendor.

The timeline document's ``vendors`` root (:data:`VENDORS_ROOT`) maps a vendor id to its
name, category, ``members`` (the ``sub`` of each member account acting for it) and call
time. Timeline items and payments name their vendor by ``vendor_id``; a free-text
``vendor`` is still read, and equal free-text names (spaces and case folded, as the
overlap finding compares them: :func:`documents.model.normal_label`) are one vendor.

:func:`vendor_key` gives every vendor one key: the directory id where an item's
``vendor_id`` names an entry of the directory, else ``"name:"`` and the folded name. Pure:
it reads the JSON view of a timeline (:func:`documents.jsonio.to_json`), never a document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .model import VENDOR, DocumentError, identifier, normal_label

VENDORS_ROOT = "vendors"
"""The timeline document's root map of vendors (id -> entry)."""
NAME_PREFIX = "name:"
"""How a free-text vendor's key begins (a directory id never holds a colon)."""


@dataclass(frozen=True)
class Vendor:
    """An entry of the vendor directory."""

    id: str
    name: str
    category: str | None = None
    members: tuple[str, ...] = ()
    call_time: str | None = None


def read_directory(timeline_json: Mapping[str, object]) -> dict[str, Vendor]:
    """The valid entries of a timeline view's ``vendors`` (id -> :class:`Vendor`, in id
    order); an entry that breaks the schema is left out (the view reports it already), as
    is anything when there is no directory."""
    raw = timeline_json.get(VENDORS_ROOT)
    if not isinstance(raw, Mapping):
        return {}
    directory: dict[str, Vendor] = {}
    for vendor_id in sorted(key for key in raw if isinstance(key, str)):
        entry = raw[vendor_id]
        if not isinstance(entry, Mapping):
            continue
        try:
            identifier(vendor_id)
            values = {
                f.name: f.default if entry.get(f.name) is None else f.check(entry[f.name])
                for f in VENDOR.fields
            }
        except DocumentError:
            continue
        if values["name"] is None:
            continue
        directory[vendor_id] = Vendor(id=vendor_id, **values)
    return directory


def vendor_key(item: Mapping[str, object], directory: Mapping[str, Vendor]) -> str | None:
    """The vendor of ``item`` (a timeline item or payment as the JSON view shows it): its
    ``vendor_id`` when that names an entry of ``directory``, else ``"name:"`` and its
    free-text ``vendor`` folded; ``None`` when it has neither."""
    vendor_id = item.get("vendor_id")
    if isinstance(vendor_id, str) and vendor_id in directory:
        return vendor_id
    name = item.get("vendor")
    if isinstance(name, str):
        folded = normal_label(name)
        if folded:
            return NAME_PREFIX + folded
    return None


def name_key(name: str) -> str | None:
    """The key of a free-text vendor ``name`` (``None`` for a blank one)."""
    folded = normal_label(name)
    return NAME_PREFIX + folded if folded else None


def spellings(timeline: Mapping[str, object]) -> dict[str, str]:
    """Each free-text vendor's key -> its name as the timeline writes it (the first item's,
    items taken by id; spaces collapsed): what a page shows ("Harbour Strings") where the
    key holds the folded "harbour strings"."""
    found: dict[str, str] = {}
    items = timeline.get("items")
    if not isinstance(items, Mapping):
        return found
    for item_id in sorted(items):
        item = items[item_id]
        name = item.get("vendor") if isinstance(item, Mapping) else None
        if isinstance(name, str) and (key := name_key(name)) is not None:
            found.setdefault(key, " ".join(name.split()))
    return found


def vendor_name(
    key: str, directory: Mapping[str, Vendor], spelled: Mapping[str, str] | None = None
) -> str:
    """How to name the vendor ``key``: the directory's name for an id; for a free-text
    vendor its spelling in ``spelled`` (:func:`spellings`), else the folded free text (the
    key itself for an id the directory no longer holds)."""
    if key.startswith(NAME_PREFIX):
        return (spelled or {}).get(key) or key[len(NAME_PREFIX) :]
    vendor = directory.get(key)
    return vendor.name if vendor is not None else key
