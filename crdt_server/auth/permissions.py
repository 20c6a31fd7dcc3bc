"""Who may do what: the role x document permission matrix.

Every wedding member has one role. The matrix maps role x document to ``write`` (read and
write), ``operate`` (read as with ``read``; change only through the domain operations of
:data:`OPERATE_OPERATIONS`, over HTTP), ``read`` (receive state and presence, publish own
presence, never write) or ``none`` (refused at the upgrade as not allowed). Operators replace it
with a JSON object in ``CRDT_SERVER_PERMISSIONS``; a token may carry per-document overrides
signed by the app backend that issued it.

Beside documents, the matrix names **capabilities**: actions on the wedding that are not
a document's read or write (posting custom events, managing webhooks, inviting members...).
Each capability belongs to the feature that checks it, which declares it with the roles that
have it by default (``Feature.capabilities``; the app gives the matrix those of the features
it runs); an operator's matrix may replace any of them under the reserved key
``"capabilities"``, and naming a capability no running feature declares is an error::

    {"couple": {...}, "planner": {...}, "capabilities": {"webhooks.manage": ["planner"]}}

Some **fields** are narrower than their document (:data:`FIELD_READERS`): a guest's
``notes`` and ``contact`` are for the couple, the planner and family, while vendors, who read
the guest list for the catering, keep seeing ``dietary`` and ``meal``. The JSON views (the
document read, versions) leave such a field out for other roles, entry events never carry
notes, edit-session events (``*.notes_edited``) reach them without their excerpts, findings
reach them without the field's values (:mod:`documents.redaction`), and webhook deliveries
are cut to their creator's role. A Yjs replica cannot be filtered per field, so a role with
hidden fields in a document reads a *projection* of it over its socket, binary reads and HTTP
sync (whatever grants it the document, a token's override included): a server-written copy
without those fields (:mod:`crdt_server.features.projections`, :meth:`PermissionMatrix.projected`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from enum import StrEnum

from crdt_server.documents import DOCUMENT_KINDS

__all__ = [
    "DEFAULT_MATRIX",
    "FIELD_READERS",
    "DEFAULT_GUEST_FIELDS",
    "GUEST_FIELD_SETS",
    "MEAL_FIELDS",
    "LATER_DOCUMENTS",
    "LEADS",
    "OPERATE_OPERATIONS",
    "ROLES",
    "Access",
    "PermissionMatrix",
    "PermissionsError",
    "operation_refusal",
    "projection_key_of",
]

ROLES: tuple[str, ...] = ("couple", "planner", "vendor", "family", "friend")


class Access(StrEnum):
    WRITE = "write"
    OPERATE = "operate"
    """Read as with ``read`` (the socket is read-only), and change the document only
    through the domain operations :data:`OPERATE_OPERATIONS` lists for it, over HTTP: a
    Yjs update can set any field, an operation names the ones it sets."""
    READ = "read"
    NONE = "none"

    @property
    def can_read(self) -> bool:
        return self is not Access.NONE

    @property
    def can_write(self) -> bool:
        """Whether any Yjs update (socket, HTTP update or sync) and any operation is allowed."""
        return self is Access.WRITE

    @property
    def can_operate(self) -> bool:
        """Whether the operations of :data:`OPERATE_OPERATIONS` are allowed (over HTTP)."""
        return self is Access.WRITE or self is Access.OPERATE


class PermissionsError(ValueError):
    """A permission matrix or override is not well formed."""


_W, _O, _R, _N = Access.WRITE, Access.OPERATE, Access.READ, Access.NONE

DEFAULT_MATRIX: dict[str, dict[str, Access]] = {
    # The couple and their planner run the whole plan.
    "couple": {"timeline": _W, "budget": _W, "guests": _W, "seating": _W, "tasks": _W},
    "planner": {"timeline": _W, "budget": _W, "guests": _W, "seating": _W, "tasks": _W},
    # Family helps with who comes and where they sit, through the answers and seats only
    # (issue 47: a writer of the Yjs document can set any field of any guest, and so
    # could hang the server with one hostile update); money stays private.
    # Family sees the checklist (who does what, by when) without changing it.
    "family": {"timeline": _R, "budget": _N, "guests": _O, "seating": _O, "tasks": _R},
    # Vendors see the schedule and headcount (catering, seating plans), not the money.
    "vendor": {"timeline": _R, "budget": _N, "guests": _R, "seating": _R, "tasks": _N},
    # Friends see when and where things happen.
    "friend": {"timeline": _R, "budget": _N, "guests": _N, "seating": _N, "tasks": _N},
}

LATER_DOCUMENTS: tuple[str, ...] = ("tasks",)
"""Documents added after operators could write their own matrix: a role of an operator's
``CRDT_SERVER_PERMISSIONS`` that does not name one gets its row of :data:`DEFAULT_MATRIX`
for it (``none`` for a role that has no row there), not ``none`` (which would lock the
couple out of their tasks on every customised deployment); the server warns once at start
(:attr:`PermissionMatrix.defaulted`)."""


LEADS = frozenset({"couple", "planner"})
"""Who runs the wedding: the roles most capabilities default to."""

CAPABILITIES_KEY = "capabilities"

FIELD_READERS: dict[tuple[str, str], frozenset[str]] = {
    # Private notes about a guest (family news, who not to seat together): not for vendors.
    ("guests", "notes"): LEADS | {"family"},
    # How to reach a guest (phone, email): for who invites them, not for vendors.
    ("guests", "contact"): LEADS | {"family"},
    # Where a household's invitation is posted: a contact field like the one above.
    ("guests", "mailing_address"): LEADS | {"family"},
    # A household's note to the couple from its RSVP page ("Sam is allergic to nuts"), and
    # when it was written: personal, like a guest's notes.
    ("guests", "rsvp_note"): LEADS | {"family"},
    ("guests", "rsvp_note_at"): LEADS | {"family"},
}
"""(document, field) -> the roles that may read it; fields not listed are read by whoever
reads their document. The timeline's run of show is not listed: everyone who reads the
timeline (friends included) reads it. Nor is anything of the seating: a table's ``shape`` and
``position`` (the seating chart) are for every reader, vendors included (the venue and the
caterer set the room out by them)."""


GUEST_FIELD_SETS: tuple[str, ...] = ("nothing", "counts", "names", "names_meals")
"""What a vendor member reads of the guest list, as the couple chose it (stored on their
membership, carried by their tokens' ``guest_fields`` claim): ``nothing`` (the guests
document is not open to them at all), ``counts`` (the document is not open to them; the
headcount, meal and dietary totals are, at ``GET /api/weddings/{id}/guest-counts``),
``names`` (the guest list without anyone's meal or dietary needs, nor what
:data:`FIELD_READERS` keeps from vendors) and ``names_meals`` (with meals and dietary needs:
what every vendor read before field sets, and what a token without the claim still reads).
Each readable set is served by its own projection (``w42/guests@names``,
``w42/guests@names_meals``), whatever the reader's role."""

DEFAULT_GUEST_FIELDS = "counts"
"""What a vendor made a member without a choice reads of the guest list (an invitation or
a directory entry that says nothing): the totals, until the couple chooses more."""

MEAL_FIELDS = frozenset({"meal", "dietary"})
"""A guest's fields that ``names`` leaves out beside those :data:`FIELD_READERS` hides."""

_CLOSED = frozenset({"nothing", "counts"})
"""Field sets that do not open the guests document."""

OPERATE_OPERATIONS: dict[str, dict[str, frozenset[str] | None]] = {
    # Who comes and what they eat: the answers a family member collects by phone.
    "guests": {
        "set_rsvp": None,
        "update_guest": frozenset({"rsvp", "meal", "dietary", "plus_one"}),
    },
    # Where they sit; tables themselves stay with who runs the wedding.
    "seating": {"assign_seat": None, "unassign_seat": None, "seat_household": None},
}
"""Document -> the operations ``operate`` allows on it -> the fields the operation may set
(``None``: every argument it takes). The entry's id is always allowed. A document not listed
has no operations, so ``operate`` is refused for it in a matrix or a token's overrides."""

_ID_ARGUMENTS = frozenset({"op", "guest_id"})


def operation_refusal(doc: str, op: Mapping[str, object]) -> tuple[str, str] | None:
    """Why ``operate`` access may not run ``op`` on ``doc``: ``(message, field)``, the field
    being ``op`` or the argument at fault; ``None`` when it may. Only the permission is
    checked here: the domain still validates the operation (malformed, impossible)."""
    allowed = OPERATE_OPERATIONS.get(doc, {})
    name = op.get("op")
    if not isinstance(name, str) or name not in allowed:
        listed = ", ".join(allowed) or "none"
        return f"you may run only these operations on {doc!r}: {listed}", "op"
    fields = allowed[name]
    if fields is not None:
        for key in op:
            if key not in _ID_ARGUMENTS and key not in fields:
                shown = ", ".join(sorted(fields))
                return f"{name} may change only {shown} for you, not {key!r}", str(key)
    return None


def _parse_access(value: object, where: str, doc: str | None = None) -> Access:
    try:
        access = Access(str(value)) if isinstance(value, str) else Access(repr(value))
    except ValueError as exc:
        raise PermissionsError(
            f"{where}: {value!r} is not one of write, operate, read, none"
        ) from exc
    if access is Access.OPERATE and doc is not None and doc not in OPERATE_OPERATIONS:
        # Silently meaning "read" would hide an operator's mistake.
        listed = ", ".join(OPERATE_OPERATIONS)
        raise PermissionsError(f"{where}: operate has no operations on {doc!r} (only {listed})")
    return access


def parse_overrides(raw: object, where: str = "docs") -> dict[str, Access]:
    """Validate ``{doc: access}`` (a token's per-document overrides)."""
    if not isinstance(raw, Mapping):
        raise PermissionsError(f"{where} must be an object of document -> access")
    result: dict[str, Access] = {}
    for doc, value in raw.items():
        if doc not in DOCUMENT_KINDS:
            raise PermissionsError(f"{where}: unknown document {doc!r}")
        result[str(doc)] = _parse_access(value, f"{where}.{doc}", str(doc))
    return result


class PermissionMatrix:
    """Role x document -> :class:`Access`; unknown roles have no access at all."""

    def __init__(
        self,
        matrix: Mapping[str, Mapping[str, Access]] | None = None,
        capabilities: Mapping[str, frozenset[str]] | None = None,
        defaulted: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        """``capabilities``: capability -> the roles that have it (the running features'
        declarations, ``crdt_server.features.capabilities_of``, with the operator's
        replacements); without them, nobody has any capability. ``defaulted``: document ->
        the roles whose access to it came from :data:`DEFAULT_MATRIX` because the operator's
        matrix did not name it (:data:`LATER_DOCUMENTS`)."""
        source = DEFAULT_MATRIX if matrix is None else matrix
        self._matrix = {role: dict(docs) for role, docs in source.items()}
        self._capabilities = dict(capabilities or {})
        self.defaulted: dict[str, tuple[str, ...]] = dict(defaulted or {})
        """Document -> the roles of an operator's matrix that did not name it and got the
        default row's access (see :data:`LATER_DOCUMENTS`); empty for the default matrix."""

    @classmethod
    def from_json(
        cls, text: str, capabilities: Mapping[str, frozenset[str]] | None = None
    ) -> PermissionMatrix:
        """Parse an operator's replacement matrix: ``{"role": {"doc": "write|operate|read|none"}}``.

        Documents a role does not list get ``none``, except those of
        :data:`LATER_DOCUMENTS`: the role's access in :data:`DEFAULT_MATRIX` (recorded in
        :attr:`defaulted`, for the warning at start). ``capabilities``: the capabilities the
        running features declare, with their default roles; the operator's ``"capabilities"``
        section may replace those only (any other name is an unknown capability). Without
        them (``None``), the section is passed over and the matrix answers for documents
        and fields only (what an extension that reads hidden fields needs): the app checks
        the section against its features.
        """
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise PermissionsError(f"permissions are not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise PermissionsError("permissions must be a non-empty object of role -> documents")
        section = raw.pop(CAPABILITIES_KEY, {})
        replaced = {} if capabilities is None else _parse_capabilities(section, capabilities)
        if not raw:
            raise PermissionsError("permissions must be a non-empty object of role -> documents")
        matrix = {
            str(role): parse_overrides(docs, f"permissions.{role}") for role, docs in raw.items()
        }
        defaulted: dict[str, tuple[str, ...]] = {}
        for doc in LATER_DOCUMENTS:
            roles = tuple(role for role, docs in matrix.items() if doc not in docs)
            for role in roles:
                matrix[role][doc] = DEFAULT_MATRIX.get(role, {}).get(doc, Access.NONE)
            if roles:
                defaulted[doc] = roles
        return cls(matrix, {**(capabilities or {}), **replaced}, defaulted)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self._matrix)

    def access(
        self,
        role: str,
        doc: str,
        overrides: Mapping[str, Access] | None = None,
        fields: str | None = None,
    ) -> Access:
        """``role``'s access to ``doc`` (``overrides``: a token's ``docs``; ``fields``: its
        holder's field set of :data:`GUEST_FIELD_SETS`, ``nothing`` and ``counts`` closing
        the guests document whatever else opens it)."""
        if doc == "guests" and fields in _CLOSED:
            return Access.NONE
        if doc == "conflicts":
            # Conflict messages quote every document (the budget too, and a schema finding
            # the value of the field it is about), and one shared room cannot be filtered
            # per reader: only who may read all the documents, every field of them, may
            # read it, and nobody writes it but the server.
            every = all(self.access(role, d, overrides, fields).can_read for d in DOCUMENT_KINDS)
            hidden = any(self.hidden_fields(role, d, fields) for d in DOCUMENT_KINDS)
            return Access.READ if every and not hidden else Access.NONE
        if overrides and doc in overrides:
            return overrides[doc]
        return self._matrix.get(role, {}).get(doc, Access.NONE)

    def can_read_field(self, role: str, doc: str, field: str, fields: str | None = None) -> bool:
        """Whether ``role`` (with the field set ``fields``, if any) may read ``field`` of
        ``doc``'s entries (reading the document itself is :meth:`access`)."""
        return field not in self.hidden_fields(role, doc, fields)

    def hidden_fields(self, role: str, doc: str, fields: str | None = None) -> frozenset[str]:
        """The fields of ``doc``'s entries that ``role`` may not read: those
        :data:`FIELD_READERS` keeps from it and, for a holder of the field set ``names``
        (:data:`GUEST_FIELD_SETS`), a guest's meal and dietary needs too. A field set
        narrows a vendor's reading, never widens it: whoever holds one reads no more than a
        vendor does."""
        hidden = {f for (d, f), roles in FIELD_READERS.items() if d == doc and role not in roles}
        if fields is not None and doc == "guests":
            hidden |= {f for (d, f) in FIELD_READERS if d == doc}
            if fields != "names_meals":
                hidden |= MEAL_FIELDS
        return frozenset(hidden)

    def projected(self, role: str, doc: str, fields: str | None = None) -> bool:
        """Whether ``role`` (with the field set ``fields``) reads ``doc`` through a
        projection: some field of it is hidden from them (:meth:`hidden_fields`)."""
        return doc in DOCUMENT_KINDS and bool(self.hidden_fields(role, doc, fields))

    def projection_key(self, role: str, doc: str, fields: str | None = None) -> str | None:
        """The projection ``role`` (with the field set ``fields``) reads ``doc`` through,
        named by what it holds (``names_meals``, ``names``), or ``None`` when they read the
        document itself. Projections are keyed by the fields they hold, not by who reads
        them: a vendor whose token carries no field set and a friend given ``guests: read``
        read the same ``names_meals`` projection."""
        hidden = self.hidden_fields(role, doc, fields)
        if doc not in DOCUMENT_KINDS or not hidden:
            return None
        return projection_key_of(doc, hidden)

    def projections(self) -> dict[str, dict[str, frozenset[str]]]:
        """Document -> the projections of it that someone may read -> the fields each
        hides: the fields every role (of :data:`ROLES` and of the matrix) with hidden
        fields may not read, whether the matrix lets it read the document or a token's
        ``docs`` override does (a friend given ``guests: read`` reads the guests'
        projection, never their notes), and those of each field set that opens the
        guests. A projection nobody reads costs nothing: it is built when first read."""
        found: dict[str, dict[str, frozenset[str]]] = {}
        readers: list[tuple[str, str | None]] = [
            (r, None) for r in dict.fromkeys((*ROLES, *self.roles))
        ]
        readers += [("vendor", f) for f in GUEST_FIELD_SETS if f not in _CLOSED]
        for role, fields in readers:
            for doc in DOCUMENT_KINDS:
                key = self.projection_key(role, doc, fields)
                if key is not None:
                    found.setdefault(doc, {})[key] = self.hidden_fields(role, doc, fields)
        return found

    def can(self, role: str, capability: str) -> bool:
        """Whether ``role`` has ``capability`` (an unknown capability: nobody has it)."""
        return role in self._capabilities.get(capability, frozenset())

    def capabilities(self) -> dict[str, list[str]]:
        """Capability -> the roles that have it, sorted (for docs and ``/api/weddings/{id}
        /access``)."""
        return {name: sorted(roles) for name, roles in sorted(self._capabilities.items())}

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {role: {d: a.value for d, a in docs.items()} for role, docs in self._matrix.items()}


def _parse_capabilities(
    raw: object, declared: Mapping[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    where = f"permissions.{CAPABILITIES_KEY}"
    if not isinstance(raw, Mapping):
        raise PermissionsError(f"{where} must be an object of capability -> roles")
    parsed: dict[str, frozenset[str]] = {}
    for name, roles in raw.items():
        if name not in declared:
            known = ", ".join(sorted(declared))
            raise PermissionsError(f"{where}: unknown capability {name!r} (known: {known})")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise PermissionsError(f"{where}.{name} must be a list of roles")
        parsed[str(name)] = frozenset(roles)
    return parsed


def projection_key_of(doc: str, hidden: frozenset[str]) -> str:
    """The name of the projection of ``doc`` without the ``hidden`` fields: a field set's
    name where one holds exactly that (``names_meals``, ``names``), else ``hides-`` and a
    short digest of the hidden fields (a document other than the guests)."""
    if doc == "guests":
        private = frozenset(f for (d, f) in FIELD_READERS if d == doc)
        if hidden == private:
            return "names_meals"
        if hidden == private | MEAL_FIELDS:
            return "names"
    digest = hashlib.sha256(",".join(sorted(hidden)).encode()).hexdigest()[:12]
    return f"hides-{digest}"
