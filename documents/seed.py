"""Deterministic seeding of a new wedding document.

Seeding writes only the ``meta`` map, and only plain values that are identical on every
replica (schema version, kind, wedding id). That is what makes it safe to seed on two
processes at once: two clients writing the same map key with the same value merge to one
key (last writer wins, and both writers wrote the same thing), whereas two array inserts
would both survive and duplicate content. It is also why seeding writes no nested maps
(two replicas would each create their own, one would win and edits made inside the other
would be lost) and no defaults people edit later (a concurrent seed could overwrite a real
edit made on a replica that had not seen the first seed). Root maps need no seeding: in
Yjs they exist by name, without any content, on every replica.
"""

from __future__ import annotations

from typing import Any

from pycrdt import Doc

from .model import DOCUMENT_KINDS, SCHEMA_VERSION, WEDDING_ID_PATTERN, DocumentError, shown
from .schema import META, plain, root


def meta_changes(doc: Doc[Any], kind: str, wedding_id: str) -> dict[str, Any]:
    """The ``meta`` keys seeding would write (empty when already seeded so); raises
    :class:`DocumentError` for an unknown kind, a bad wedding id, or a doc that belongs to
    another wedding or kind or has another schema version."""
    if kind not in DOCUMENT_KINDS:
        raise DocumentError(f"unknown document kind {shown(kind)}", "kind")
    if not isinstance(wedding_id, str) or WEDDING_ID_PATTERN.fullmatch(wedding_id) is None:
        raise DocumentError(
            "must be 1 to 64 letters, digits, '-' or '_', starting with a letter or digit, "
            f"got {shown(wedding_id)}",
            "wedding_id",
        )
    wanted: dict[str, Any] = {"schema": SCHEMA_VERSION, "kind": kind, "wedding_id": wedding_id}
    meta = root(doc, META)
    missing: dict[str, Any] = {}
    for key, value in wanted.items():
        stored = plain(meta.get(key))
        if stored is None:
            missing[key] = value
        elif stored != value or isinstance(stored, bool):
            raise DocumentError(
                f"the document has {key} {shown(stored)}, cannot seed it with {shown(value)}",
                f"meta/{key}",
            )
    return missing


def seed(doc: Doc[Any], kind: str, wedding_id: str, *, origin: Any = None) -> bool:
    """Mark ``doc`` as document ``kind`` of wedding ``wedding_id``, in one transaction.

    Idempotent: returns ``False`` and writes nothing when the doc is already seeded so.
    Raises :class:`DocumentError` as :func:`meta_changes` does.
    """
    missing = meta_changes(doc, kind, wedding_id)
    if not missing:
        return False
    meta = root(doc, META)
    with doc.transaction(origin=origin):
        for key, value in missing.items():
            meta[key] = value
    return True
