"""The guest list as CSV (RFC 4180): export, and an import planned as a diff, then applied
in one transaction.

Columns are the guest fields, ``id`` first (:data:`COLUMNS`), except ``notes``: private
collaborative text, which a spreadsheet round trip would replace whole. ``dietary`` is one cell of
entries separated by ``;``, ``plus_one`` is ``true`` or ``false``; an empty cell is an
absent field (its default for ``rsvp`` and ``plus_one``). An import may leave columns out
(those fields stay as they are) but needs ``name`` or ``id``.

Each row is matched to a guest by its ``id`` when it has one (a new id adds a guest with
that id), else by name and household (case and spaces ignored, and the stored spelling
kept); a row matching nobody adds a guest, under an id derived from the wedding and the
row's normalised name and household (:func:`documents.model.derived_id`), so two devices
importing one file converge on one guest, and a re-run adds none. Two rows may not match
the same guest. ``household_id`` and ``plus_one_of`` are columns like the others.

Spreadsheets run a cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage
return) as a formula: the export prefixes such cells with ``'`` (OWASP's advice), and the
import removes exactly that prefix again, so an export imported back changes nothing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Doc, Map

from crdt_server.documents.model import (
    GUEST,
    DocumentError,
    derived_id,
    household_key,
    identifier,
)
from crdt_server.documents.schema import Guest, new_entry, read_guests, read_meta, root, write

__all__ = [
    "COLUMNS",
    "CsvError",
    "GuestImport",
    "RowError",
    "apply_import",
    "export_guests",
    "plan_import",
]

COLUMNS: tuple[str, ...] = ("id", *(f.name for f in GUEST.fields if not f.text))
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
MAX_ROWS = 20_000
"""Most rows one import may have (a wedding's guest list is far smaller)."""


class CsvError(ValueError):
    """The file as a whole cannot be read (encoding, header): nothing was planned."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class RowError:
    """A problem with one row: its line in the file (1 is the header), the column."""

    line: int
    field: str
    message: str


@dataclass(slots=True)
class GuestImport:
    """What an import would do, row by row (line numbers of the file)."""

    added: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    """(line, new guest id, every field given)"""
    changed: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    """(line, guest id, the fields that change: name -> new value, ``None`` to clear)"""
    unchanged: list[tuple[int, str]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


# -- export -------------------------------------------------------------------------------


def _formula(cell: str) -> bool:
    """Whether a spreadsheet would run ``cell`` once its leading ``'`` are removed (the
    export adds one ``'`` to such cells and the import removes one, so a value that itself
    starts with ``'=`` survives the round trip)."""
    return cell.lstrip("'").startswith(_FORMULA)


def _safe(cell: str) -> str:
    return "'" + cell if _formula(cell) else cell


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "; ".join(value)
    return str(value)


def _row(guest: Guest, columns: tuple[str, ...] = COLUMNS) -> list[str]:
    return [_safe(_cell(getattr(guest, name))) for name in columns]


def export_guests(doc: Doc[Any] | None, *, bom: bool = False, hidden: Collection[str] = ()) -> str:
    """The guest list as CSV text (CRLF line ends, every guest in id order); ``bom`` starts
    it with a byte order mark, which Excel needs to read UTF-8; ``hidden`` columns are left
    out (fields the reader may not read)."""
    columns = tuple(c for c in COLUMNS if c not in hidden)
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for guest in _guests(doc).values():
        writer.writerow(_row(guest, columns))
    return out.getvalue()


# -- import -------------------------------------------------------------------------------


def _unsafe(cell: str) -> str:
    """Undo :func:`_safe`."""
    return cell[1:] if cell.startswith("'") and _formula(cell) else cell


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the record starts, cells) of each non-blank record."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvError(f"line {reader.line_num}: not valid CSV ({exc})") from None
        if any(c.strip() for c in cells):
            yield line, cells
        line = reader.line_num + 1


def _value(column: str, raw: str) -> Any:
    """The canonical value of one cell (``None``: absent), or :class:`DocumentError`."""
    cell = _unsafe(raw).strip()
    if column == "id":
        return identifier(cell) if cell else None
    f = GUEST.field(column)
    if not cell:
        if f.required:
            raise DocumentError("must not be empty")
        return f.default
    if column == "plus_one":
        if cell.lower() in _TRUE:
            return True
        if cell.lower() in _FALSE:
            return False
        raise DocumentError(f"must be true or false, got {cell[:40]!r}")
    if column == "dietary":
        return f.rule([part for part in cell.split(";") if part.strip()])
    return f.rule(cell)


def _key(name: object, household: object) -> tuple[str, str]:
    return (household_key(str(name)), household_key(str(household or "")))


def plan_import(doc: Doc[Any] | None, text: str) -> GuestImport:
    """What importing ``text`` into the guest list ``doc`` would change. Raises
    :class:`CsvError` when the file cannot be read at all; row problems are in
    :attr:`GuestImport.errors` (with them, nothing may be applied)."""
    text = text.removeprefix("\ufeff")
    records = _records(text)
    header = _header(next(records, None))
    planner = _Planner.over(doc)
    rows = 0
    for line, cells in records:
        rows += 1
        if rows > MAX_ROWS:
            raise CsvError(f"more than {MAX_ROWS} rows")
        values = _row_values(line, header, cells, planner.plan.errors)
        if values is not None:
            error = planner.place(line, values)
            if error is not None:
                planner.plan.errors.append(error)
    return planner.plan


def _header(first: tuple[int, list[str]] | None) -> list[str]:
    """The file's columns, from its first record; :class:`CsvError` if they cannot be."""
    if first is None:
        raise CsvError("the file is empty: it needs a header row (id, name, household, ...)")
    header = [h.strip().lower() for h in first[1]]
    for column in header:
        if column not in COLUMNS:
            raise CsvError(f"line 1: unknown column {column[:40]!r}; known: {', '.join(COLUMNS)}")
    if len(set(header)) != len(header):
        raise CsvError("line 1: a column appears twice")
    if "name" not in header and "id" not in header:
        raise CsvError("line 1: the header needs a name or an id column")
    return header


def _row_values(
    line: int, header: list[str], cells: list[str], errors: list[RowError]
) -> dict[str, Any] | None:
    """A row's canonical values by column, or ``None`` with its problems added to
    ``errors`` (every cell is read, so each bad one is reported)."""
    if len(cells) != len(header):
        errors.append(
            RowError(line, "row", f"has {len(cells)} cells, the header has {len(header)}")
        )
        return None
    values: dict[str, Any] = {}
    bad = False
    for column, raw in zip(header, cells, strict=True):
        try:
            values[column] = _value(column, raw)
        except DocumentError as exc:
            errors.append(RowError(line, column, exc.message))
            bad = True
    return None if bad else values


@dataclass(slots=True)
class _Planner:
    """An import's plan as its rows are placed: the guests they match (by id, or by name
    and household) and the guests earlier rows claimed, by the line that did."""

    guests: Mapping[str, Guest]
    wedding_id: str
    stored: set[str]
    """Every key of the guest collection, readable or not (once: every new row's derived
    id is looked up in it)."""
    by_key: dict[tuple[str, str], list[str]]
    plan: GuestImport = field(default_factory=GuestImport)
    claimed: dict[str, int] = field(default_factory=dict)

    @classmethod
    def over(cls, doc: Doc[Any] | None) -> _Planner:
        guests = _guests(doc)
        by_key: dict[tuple[str, str], list[str]] = {}
        for guest in guests.values():
            by_key.setdefault(_key(guest.name, guest.household), []).append(guest.id)
        wedding_id = (read_meta(doc).wedding_id if doc is not None else None) or ""
        return cls(guests, wedding_id, root_keys(doc), by_key)

    def place(self, line: int, values: dict[str, Any]) -> RowError | None:
        """Plan one row: a change to the guest it matches, or a new guest; or its problem."""
        guest_id = values.pop("id", None)
        if guest_id is None:
            matched = self._by_name(line, values)
            if isinstance(matched, RowError):
                return matched
            guest_id = matched
        if guest_id is not None and guest_id in self.claimed:
            return RowError(line, "id", f"the same guest as line {self.claimed[guest_id]}")
        current = self.guests.get(guest_id) if guest_id is not None else None
        if current is None:
            return self._add(line, guest_id, values)
        self.claimed[guest_id] = line
        differs = _differences(current, values)
        if differs:
            self.plan.changed.append((line, guest_id, differs))
        else:
            self.plan.unchanged.append((line, guest_id))
        return None

    def _by_name(self, line: int, values: dict[str, Any]) -> str | None | RowError:
        """The guest a row without an id matches by name and household (``None``: none)."""
        if "name" not in values:
            return RowError(line, "id", "a row needs an id or a name")
        found = self.by_key.get(_key(values["name"], values.get("household")), [])
        if len(found) > 1:
            return RowError(
                line, "name", f"{len(found)} guests have this name and household; give the id"
            )
        if not found:
            return None
        # Matched by them: the stored spelling stays (the key ignores case and spaces).
        values.pop("name", None)
        values.pop("household", None)
        return found[0]

    def _add(self, line: int, guest_id: str | None, values: dict[str, Any]) -> RowError | None:
        """Plan a new guest: under the row's id, or one derived from its name."""
        if "name" not in values:
            return RowError(line, "name", "a new guest needs a name")
        if guest_id is not None and guest_id in self.stored:
            return RowError(line, "id", f"guest {guest_id!r} is unreadable; fix it first")
        if guest_id is None:
            guest_id = _derived(self.wedding_id, values)
            if guest_id in self.claimed:
                return RowError(line, "name", f"the same guest as line {self.claimed[guest_id]}")
            if guest_id in self.stored:  # a guest it made before, since renamed
                return RowError(line, "name", f"guest {guest_id!r} has another name now")
        self.claimed[guest_id] = line
        self.plan.added.append((line, guest_id, values))
        return None


def _guests(doc: Doc[Any] | None) -> Mapping[str, Guest]:
    """The readable guests, in id order, read as every reader reads them
    (:func:`documents.schema.read_guests`: an iterative walk that stops at a bounded
    depth). Not through yrs's JSON rendering of the whole collection, which was three
    times faster: it recurses once per level, so a guest nested 3,000 maps deep broke
    ``json.loads`` (a 500 for everyone, issue 47) and one 30,000 deep overflowed the
    native stack and ended the process."""
    return read_guests(doc).guests


def root_keys(doc: Doc[Any] | None) -> set[str]:
    return set(root(doc, GUEST.collection).keys()) if doc is not None else set()


def _derived(wedding_id: str, values: Mapping[str, Any]) -> str:
    """The id of a guest a row adds: derived from the wedding and the row's normalised
    name and household, so two devices importing one file make one guest, and a re-run
    makes none."""
    return derived_id("guest", wedding_id, *_key(values["name"], values.get("household")))


def _differences(current: Guest, values: Mapping[str, Any]) -> dict[str, Any]:
    """The given fields whose value differs from the guest's (``None``: clear it)."""
    found: dict[str, Any] = {}
    for name, value in values.items():
        stored = getattr(current, name)
        if stored == value:
            continue
        if name == "dietary" and _reads_as(_cell(stored), value):
            continue  # an entry holding a ';' reads back split: that is no change
        found[name] = value
    return found


def _reads_as(cell: str, value: Any) -> bool:
    try:
        return bool(_value("dietary", cell) == value)
    except DocumentError:
        return False


def apply_import(doc: Doc[Any], plan: GuestImport, *, origin: Any = None) -> None:
    """Apply a plan without errors to ``doc`` in one transaction (one update)."""
    if plan.errors:
        raise ValueError("a plan with errors cannot be applied")
    if not plan.added and not plan.changed:
        return
    guests = root(doc, GUEST.collection)
    with doc.transaction(origin=origin):
        for _, guest_id, values in plan.added:
            guests[guest_id] = new_entry(GUEST, values)
        for _, guest_id, changed in plan.changed:
            entry = guests[guest_id]
            assert isinstance(entry, Map)
            write(entry, changed)
