"""The wedding domain: the four shared documents of every wedding.

Schemas on pycrdt shared types (:mod:`documents.schema`), deterministic seeding, JSON export
and import, validated domain operations that each change one document in one transaction,
and invariant checks reporting the conflicts a CRDT cannot rule out. Depends only on pycrdt,
the standard library and the server's vocabulary of who (``crdt_server.actor``).
"""

from .invariants import check, check_document
from .jsonio import from_json, import_json, to_json
from .model import (
    DOCUMENT_KINDS,
    FINDINGS_ROOM,
    PAYMENT_STATUSES,
    RSVP_STATES,
    SCHEMA_VERSION,
    SIDES,
    TABLE_SHAPES,
    TIMELINE_STATUSES,
    Conflict,
    DocumentError,
    DocumentKind,
    OperationError,
    format_money,
    new_id,
)
from .operations import OPERATIONS, apply_operation
from .seed import seed

__all__ = [
    "DOCUMENT_KINDS",
    "FINDINGS_ROOM",
    "OPERATIONS",
    "PAYMENT_STATUSES",
    "RSVP_STATES",
    "SCHEMA_VERSION",
    "SIDES",
    "TABLE_SHAPES",
    "TIMELINE_STATUSES",
    "Conflict",
    "DocumentError",
    "DocumentKind",
    "OperationError",
    "apply_operation",
    "check",
    "check_document",
    "format_money",
    "from_json",
    "import_json",
    "new_id",
    "seed",
    "to_json",
]
