"""Domain operations: strictly validated edits, each applied in one transaction.

An operation is a JSON object such as ``{"op": "add_guest", "name": "Ann Lee"}``. Its shape
is checked here (known op for this kind of document, no unknown fields, required fields
present, every value valid, ``malformed`` otherwise); :mod:`documents.edits` then checks it
against the document (``impossible``) before writing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from . import edits
from .edits import Invocation, Result
from .model import (
    ASSIGNMENT,
    BUDGET_SETTINGS,
    CATEGORY,
    DOCUMENT_KINDS,
    GUEST,
    HOUSEHOLD,
    MENU,
    PAYMENT,
    PROFILE,
    TABLE,
    TASK,
    TIMELINE_ITEM,
    VENDOR,
    DocumentError,
    Entity,
    Field,
    OperationError,
    currency,
    identifier,
    shown,
    wall_or_instant,
)
from .notes import TEXT_OPERATIONS, run_text_operation
from .tasks import add_task_check, seed_checklist, set_done, task_update_check


@dataclass(frozen=True)
class _Arg:
    field: Field
    required: bool = False
    nullable: bool = False


@dataclass(frozen=True)
class _Spec:
    kind: str
    args: dict[str, _Arg]
    run: Callable[[Invocation], Result]
    needs_change: bool = False  # an update: at least one field besides the id


def _creating(entity: Entity, *, extra: Mapping[str, _Arg] | None = None) -> dict[str, _Arg]:
    args = {entity.id_field: _Arg(Field(entity.id_field, identifier))}
    args.update({f.name: _Arg(f, f.required, f.nullable) for f in entity.fields})
    return args | dict(extra or {})


def _updating(entity: Entity, names: tuple[str, ...], *, required: bool = False) -> dict[str, _Arg]:
    args = {entity.id_field: _Arg(Field(entity.id_field, identifier), required=True)}
    for name in names:
        f = entity.field(name)
        args[name] = _Arg(f, required, f.nullable)
    return args


def _names(entity: Entity, *excluded: str) -> tuple[str, ...]:
    return tuple(f.name for f in entity.fields if f.name not in excluded)


# -- the table of operations ----------------------------------------------------------------

_CURRENCY = {"currency": _Arg(Field("currency", currency))}
# A timeline item's times as operations take them: with an offset, or a wall clock in the
# wedding's time zone; either way written with the zone's offset on that date (edits).
_TIMES = {name: _Arg(Field(name, wall_or_instant), required=True) for name in ("start", "end")}
_OPS: dict[str, _Spec] = {
    "add_guest": _Spec("guests", _creating(GUEST), edits.add(GUEST, edits.check_new_guest)),
    "update_guest": _Spec(
        "guests",
        _updating(GUEST, _names(GUEST)),
        edits.update(GUEST, edits.check_guest_update),
        True,
    ),
    "remove_guest": _Spec("guests", _updating(GUEST, ()), edits.remove(GUEST)),
    "set_rsvp": _Spec("guests", _updating(GUEST, ("rsvp",), required=True), edits.update(GUEST)),
    "add_household": _Spec("guests", _creating(HOUSEHOLD), edits.add(HOUSEHOLD)),
    "update_household": _Spec(
        "guests", _updating(HOUSEHOLD, _names(HOUSEHOLD)), edits.update(HOUSEHOLD), True
    ),
    "remove_household": _Spec("guests", _updating(HOUSEHOLD, ()), edits.remove(HOUSEHOLD)),
    "set_menu": _Spec(
        "guests",
        {f.name: _Arg(f, required=True, nullable=True) for f in MENU},
        edits.set_menu,
    ),
    "add_table": _Spec("seating", _creating(TABLE), edits.add(TABLE)),
    "update_table": _Spec(
        "seating", _updating(TABLE, _names(TABLE)), edits.update(TABLE, edits.check_capacity), True
    ),
    "remove_table": _Spec("seating", _updating(TABLE, ()), edits.remove_table),
    "assign_seat": _Spec(
        "seating",
        {"guest_id": _Arg(Field("guest_id", identifier), required=True)}
        | {f.name: _Arg(f, f.required, f.nullable) for f in ASSIGNMENT.fields},
        edits.assign_seat,
    ),
    "seat_household": _Spec(
        "seating",
        {
            "table_id": _Arg(Field("table_id", identifier), required=True),
            "household_id": _Arg(Field("household_id", identifier)),
            "guest_id": _Arg(Field("guest_id", identifier)),
        },
        edits.seat_household,
    ),
    "unassign_seat": _Spec(
        "seating", _updating(ASSIGNMENT, ()), edits.remove(ASSIGNMENT, "guest '{id}' has no seat")
    ),
    "add_timeline_item": _Spec(
        "timeline",
        _creating(TIMELINE_ITEM) | _TIMES,
        edits.add(TIMELINE_ITEM, edits.check_new_item),
    ),
    "update_timeline_item": _Spec(
        "timeline",
        _updating(TIMELINE_ITEM, _names(TIMELINE_ITEM, "start", "end")),
        edits.update(TIMELINE_ITEM),
        True,
    ),
    "move_timeline_item": _Spec(
        "timeline",
        _updating(TIMELINE_ITEM, ()) | {name: _Arg(arg.field) for name, arg in _TIMES.items()},
        edits.update(TIMELINE_ITEM, edits.check_move),
        True,
    ),
    "remove_timeline_item": _Spec(
        "timeline", _updating(TIMELINE_ITEM, ()), edits.remove(TIMELINE_ITEM)
    ),
    "add_vendor": _Spec("timeline", _creating(VENDOR), edits.add(VENDOR)),
    "update_vendor": _Spec(
        "timeline", _updating(VENDOR, _names(VENDOR)), edits.update(VENDOR), True
    ),
    "remove_vendor": _Spec("timeline", _updating(VENDOR, ()), edits.remove(VENDOR)),
    "set_budget_total": _Spec(
        "budget",
        {"total": _Arg(BUDGET_SETTINGS[1], required=True, nullable=True)} | _CURRENCY,
        edits.set_budget_total,
    ),
    "set_currency": _Spec(
        "budget", {"currency": _Arg(Field("currency", currency), required=True)}, edits.set_currency
    ),
    "set_profile": _Spec(
        "timeline", {f.name: _Arg(f, nullable=f.nullable) for f in PROFILE}, edits.set_profile, True
    ),
    "set_category": _Spec(
        "budget",
        {"category_id": _Arg(Field("category_id", identifier))}
        | {f.name: _Arg(f) for f in CATEGORY.fields}
        | _CURRENCY,
        edits.set_category,
    ),
    "record_payment": _Spec("budget", _creating(PAYMENT, extra=_CURRENCY), edits.record_payment),
    "update_payment": _Spec(
        "budget",
        _updating(PAYMENT, _names(PAYMENT)) | _CURRENCY,
        edits.update_payment,
        True,
    ),
    "remove_payment": _Spec("budget", _updating(PAYMENT, ()), edits.remove(PAYMENT)),
    "add_task": _Spec("tasks", _creating(TASK), edits.add(TASK, add_task_check)),
    "update_task": _Spec(
        "tasks", _updating(TASK, _names(TASK)), edits.update(TASK, task_update_check), True
    ),
    "complete_task": _Spec("tasks", _updating(TASK, ()), set_done(True)),
    "reopen_task": _Spec("tasks", _updating(TASK, ()), set_done(False)),
    "remove_task": _Spec("tasks", _updating(TASK, ()), edits.remove(TASK)),
    "seed_checklist": _Spec("tasks", {}, seed_checklist),
}

OPERATIONS: Mapping[str, str] = {name: spec.kind for name, spec in _OPS.items()}
"""Every operation name and the kind of document it applies to."""


def _validate(name: str, spec: _Spec, op: Mapping[str, Any]) -> dict[str, Any]:
    unknown = [key for key in op if key != "op" and key not in spec.args]
    if unknown:
        raise OperationError(
            f"{name} does not take {shown(unknown[0])}; it takes {', '.join(spec.args)}",
            path=str(unknown[0]),
        )
    args: dict[str, Any] = {}
    for key, arg in spec.args.items():
        if key not in op:
            if arg.required:
                raise OperationError(f"{name} needs {key}", path=key)
            continue
        value = op[key]
        if value is None:
            if not arg.nullable:
                raise OperationError("must not be null", path=key)
            args[key] = None
            continue
        try:
            args[key] = arg.field.check(value, key)
        except DocumentError as exc:
            raise OperationError(exc.message, path=key) from None
    if spec.needs_change and all(arg.required for key, arg in spec.args.items() if key in args):
        optional = [key for key, arg in spec.args.items() if not arg.required]
        raise OperationError(f"{name} needs at least one of {', '.join(optional)}")
    return args


def apply_operation(
    doc: Doc[Any],
    kind: str,
    op: Mapping[str, Any],
    *,
    origin: Any = None,
    related: Mapping[str, Doc[Any]] | None = None,
) -> Result:
    """Validate ``op`` and apply it to ``doc`` (document ``kind``) in one transaction.

    Returns ``{"op": name, "id": id of the entry concerned or None, "changed": bool}``
    (``remove_table`` adds ``"unassigned"``: the guest ids whose seats went with it; the
    text operations of :mod:`documents.notes`, valid in every kind, add ``index``,
    ``length`` and ``position``).
    ``related`` may hold the wedding's other documents for cross-document checks: with
    ``related["guests"]``, ``assign_seat`` refuses guests unknown or declined there.

    Raises :class:`OperationError` with ``reason`` ``malformed`` or ``impossible`` (against
    the document); either way nothing changed.
    """
    if kind not in DOCUMENT_KINDS:
        raise OperationError(f"unknown document kind {shown(kind)}", path="kind")
    if not isinstance(op, Mapping):
        raise OperationError(f"an operation must be an object, got {shown(op)}")
    name = op.get("op")
    if isinstance(name, str) and name in TEXT_OPERATIONS:
        return run_text_operation(doc, kind, name, op, origin)
    spec = _OPS.get(name) if isinstance(name, str) else None
    if spec is None:
        known = sorted([*_OPS, *TEXT_OPERATIONS])
        raise OperationError(f"must be one of {', '.join(known)}, got {shown(name)}", path="op")
    if spec.kind != kind:
        raise OperationError(f"{name} applies to the {spec.kind} document, not {kind}", path="op")
    assert isinstance(name, str)
    args = _validate(name, spec, op)
    return spec.run(Invocation(name, doc, args, origin, related or {}))
