"""What an update changed, entry by entry, read from pycrdt's deep observation.

A :class:`ChangeRecorder` watches the root maps of one wedding document. Each time an update
is integrated, pycrdt reports the keys it added, updated or deleted, at the root (an entry
came or went) or one level down (a field of an entry changed); the recorder turns those into
:class:`EntryChange` values: the entry's id and the fields it changed, with before and after
values. Nothing is re-read from the document: only what the transaction touched is looked at,
so the cost follows the size of the update, not of the document.

The recorder observes; it never gates. Editors write shapes this schema does not know (a
``Y.Text`` or ``Y.Array`` inside an entry, edited in place; XML types from yjs 14 or
y-prosemirror): reading them never raises into pycrdt, whose ``apply_update`` would then
report the update as failed although it was integrated. An in-place edit below a field is
not a field change this schema makes and is not recorded; anything the recorder cannot read
is passed to its ``on_error`` (the room counts and logs it, without content) and the rest of
the update's changes are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from pycrdt import Doc, Map, MapEvent, Subscription, TextEvent, XmlElement, XmlEvent, XmlFragment

from .schema import ROOTS, TEXT_FIELDS, plain
from .shapes import entry_fields

__all__ = ["ChangeRecorder", "EntryChange", "entry_changes", "plain", "touches"]

Action = Literal["added", "updated", "removed"]


@dataclass(slots=True)
class EntryChange:
    """One entry of a root map (a guest, a table, a payment...), or one key of a settings
    map, as one update changed it.

    ``before``/``after`` hold the fields that changed (all of them for an added entry);
    a field that was removed has ``None`` after, one that appeared has ``None`` before.
    For a key of a settings map (``budget/settings``), ``id`` is the key and ``before`` /
    ``after`` are ``{"value": ...}``. ``replaced`` means the whole entry was overwritten
    (its previous fields are unknown).
    """

    root: str
    id: str
    action: Action
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    replaced: bool = False
    edited: list[str] = field(default_factory=list)


def entry_changes(records: Sequence[object]) -> Sequence[EntryChange]:
    """The change records a server's hooks carry, as this domain made them: the core types
    them narrowly (it knows no domain), every record it carries of a wedding document
    comes from a :class:`ChangeRecorder`."""
    return cast("Sequence[EntryChange]", records)


def touches(change: EntryChange, fields: Collection[str]) -> bool:
    """Whether ``change`` may have changed any of ``fields`` of its entry: it added, removed
    or replaced the entry, or changed one of them (its value, or its text in place). For a
    follower whose work reads the whole document: a change to no field it reads (typing a
    title) needs no run."""
    if change.action != "updated" or change.replaced:
        return True
    return any(name in fields for name in (*change.before, *change.after, *change.edited))


SETTINGS_ROOTS = frozenset({"settings", "profile", "menu"})
"""Roots whose keys are fields of one record rather than ids of entries."""


OnError = Callable[[BaseException], None]
"""Told of an exception raised while reading an update's changes (which were kept)."""


class ChangeRecorder:
    """Collects :class:`EntryChange` values of one document until :meth:`take` is called.

    Attach it to the ``Doc`` of a document of ``kind``; it observes that kind's root maps
    deeply. Several updates' changes to one entry are merged until taken.
    """

    __slots__ = ("_changes", "_subscriptions", "_roots", "_on_error")

    def __init__(self, doc: Doc[Any], kind: str, *, on_error: OnError | None = None) -> None:
        self._on_error = on_error
        self._changes: dict[tuple[str, str], EntryChange] = {}
        # The subscriptions alone: a root's Python wrapper (about 270 bytes, with the sets
        # of its event streams) is not needed to keep observing it, nor to stop (issue 76).
        self._subscriptions: list[Subscription] = []
        self._roots = ROOTS.get(kind, ())
        for root in self._roots:
            shared: Map[Any] = doc.get(root, type=Map)
            self._subscriptions.append(shared.observe_deep(self._make_callback(root)))

    def _make_callback(self, root: str) -> Any:
        def callback(events: Sequence[Any]) -> None:
            # Whatever happens here, nothing may escape into pycrdt (see the module
            # docstring); a Rust panic is a BaseException, so that is what is caught.
            for event in events:
                try:
                    # A yjs-14 entry keeps its fields as attributes: an XmlEvent's keys.
                    if isinstance(event, MapEvent | XmlEvent):
                        found: Any = event  # pycrdt's stubs declare neither path nor keys
                        self._record(root, list(found.path), found.keys)
                    elif isinstance(event, TextEvent):
                        self._text_edited(root, list(getattr(event, "path", ())))
                except (KeyboardInterrupt, SystemExit, GeneratorExit):
                    raise
                except BaseException as exc:
                    if self._on_error is not None:
                        self._on_error(exc)

        return callback

    def close(self) -> None:
        """Stop observing (the recorder keeps what it collected)."""
        for subscription in self._subscriptions:
            subscription.drop()
        self._subscriptions.clear()

    def take(self) -> list[EntryChange]:
        """The changes collected since the last call, in the order entries were first
        touched; entries whose changes cancelled out are left out."""
        changes = [c for c in self._changes.values() if _meaningful(c)]
        self._changes.clear()
        return changes

    def discard(self) -> None:
        """Forget what was collected (changes someone else already reported)."""
        self._changes.clear()

    def _record(self, root: str, path: list[Any], keys: Mapping[str, Any]) -> None:
        if root in SETTINGS_ROOTS:
            if path:
                return  # settings hold plain values; nothing nests under them
            for key, change in keys.items():
                self._field(root, key, "value", change)
            return
        if not path:
            for entry_id, change in keys.items():
                self._entry(root, str(entry_id), change)
        elif len(path) == 1:
            for name, change in keys.items():
                self._field(root, str(path[0]), str(name), change)
        # Deeper paths (a nested array of a field) are reported on the field itself by
        # the level above when the field is replaced; an in-place edit of a nested array
        # is not a change this schema makes.

    def _text_edited(self, root: str, path: list[Any]) -> None:
        """A text field of an entry (``[entry_id, "notes"]``) was edited in place."""
        if root in SETTINGS_ROOTS or len(path) != 2 or path[1] not in TEXT_FIELDS:
            return
        key = (root, str(path[0]))
        current = self._changes.get(key)
        if current is None:
            current = self._changes[key] = EntryChange(root, key[1], "updated")
        if path[1] not in current.edited:
            current.edited.append(str(path[1]))

    def _entry(self, root: str, entry_id: str, change: Mapping[str, Any]) -> None:
        action = change.get("action")
        key = (root, entry_id)
        current = self._changes.get(key)
        if action == "add":
            after = _fields(change.get("newValue"))
            if current is not None and current.action == "removed":
                # removed then added again in one batch: the entry was replaced
                current.action, current.after, current.replaced = "updated", after, True
                return
            self._changes[key] = EntryChange(root, entry_id, "added", {}, after)
        elif action == "delete":
            before = _fields(change.get("oldValue"))
            if current is not None and current.action == "added":
                del self._changes[key]  # came and went within what was collected
                return
            if current is not None:
                before = {**before, **current.before}
            self._changes[key] = EntryChange(root, entry_id, "removed", before, {})
        elif action == "update":
            # The entry's value was overwritten as a whole (a new map, or a plain value
            # such as a seat assignment).
            old, new = change.get("oldValue"), change.get("newValue")
            before, after = _fields(old), _fields(new)
            if current is not None and current.action == "added":
                current.after = after
                return
            replaced = any(isinstance(v, Map | XmlElement | XmlFragment) for v in (old, new))
            if current is not None:
                before = {**before, **current.before}
            self._changes[key] = EntryChange(root, entry_id, "updated", before, after, replaced)

    def _field(self, root: str, entry_id: str, name: str, change: Mapping[str, Any]) -> None:
        action = change.get("action")
        old = plain(change.get("oldValue")) if action != "add" else None
        new = plain(change.get("newValue")) if action != "delete" else None
        key = (root, entry_id)
        current = self._changes.get(key)
        if current is None:
            current = self._changes[key] = EntryChange(root, entry_id, "updated")
        if current.action == "added":
            if new is None:
                current.after.pop(name, None)
            else:
                current.after[name] = new
            return
        if current.action == "removed":
            return
        current.before.setdefault(name, old)
        current.after[name] = new


def _fields(value: Any) -> dict[str, Any]:
    """An entry's fields: a map's content (or a yjs-14 type's attributes), or a plain
    value (a seat assignment) as is."""
    if value is None or isinstance(value, XmlFragment):
        return {}  # a yjs-14 type whose attributes pycrdt does not expose
    fields = entry_fields(value)
    if fields is not None:
        return fields
    return {"value": plain(value)}


def _meaningful(change: EntryChange) -> bool:
    if change.action != "updated" or change.replaced or change.edited:
        return True
    names = change.before.keys() | change.after.keys()
    return any(change.before.get(n) != change.after.get(n) for n in names)
