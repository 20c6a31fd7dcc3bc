"""Invitations and the ceiling on what one member may grant another: pure rules.

**The ceiling** is fixed: ``CRDT_SERVER_PERMISSIONS`` may change which roles hold
``members.invite`` or ``members.manage``, never what a holder may grant. Only the couple
grants ``couple``; nobody grants a role, or a narrowing of one, that would read or write a
document above their own access (their token's overrides included) or read a field hidden
from them; nobody but the couple grants a role holding a capability they lack (the couple
delegates: a planner moderates threads the couple may not). It applies to invitations,
role changes, edits and removals of another member (:func:`grant_refusal`,
:func:`member_edit_refusal`).

**A code** is ``<id>.<secret>``: the id (not secret: it is in the list of invitations)
finds the row, the 256-bit secret is compared with the stored digest in constant time
(:func:`code_matches`); only the digest is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping

from crdt_server.auth.digests import secret_digest
from crdt_server.auth.permissions import Access, PermissionMatrix
from crdt_server.documents import DOCUMENT_KINDS

__all__ = [
    "DEFAULT_EXPIRES_IN",
    "MANY_USE_ROLES",
    "MAX_EXPIRES_IN",
    "MAX_USES",
    "access_rank",
    "code_matches",
    "grant_refusal",
    "member_edit_refusal",
    "narrowing_refusal",
    "new_code",
    "new_member_sub",
    "split_code",
]

DEFAULT_EXPIRES_IN = 7 * 24 * 3600
"""An invitation's life unless it says otherwise: seven days."""
MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 30 * 24 * 3600
MAX_USES = 100
"""The most people one invitation lets in (family and friends only; every other role: 1)."""
MANY_USE_ROLES = frozenset({"family", "friend"})
"""The roles an invitation of several uses may grant: one link for the cousins, never a
vendor's or the planner's seat passed around."""

_RANK = {Access.NONE: 0, Access.READ: 1, Access.OPERATE: 2, Access.WRITE: 3}
_CODE = re.compile(r"([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})")
_DUMMY_DIGEST = hashlib.sha256(b"no invitation has this digest").hexdigest()


def access_rank(access: Access) -> int:
    """none < read < operate < write (each level allows all that the one below does)."""
    return _RANK[access]


def new_code() -> tuple[str, str, str]:
    """A new invitation's ``(id, code, digest)``: the code is ``id.secret``."""
    invitation = secrets.token_urlsafe(12)
    secret = secrets.token_urlsafe(32)
    return invitation, f"{invitation}.{secret}", secret_digest(secret)


def new_member_sub() -> str:
    """The ``sub`` of a person who joined by invitation (the server's, never the client's)."""
    return f"m_{secrets.token_urlsafe(16)}"


def split_code(code: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed code, else ``None``."""
    found = _CODE.fullmatch(code)
    return None if found is None else (found.group(1), found.group(2))


def code_matches(secret: str, digest: str | None) -> bool:
    """Whether ``secret`` is the one of ``digest``, in constant time (a missing invitation
    is compared with a dummy digest, so its answer takes as long as a wrong secret's)."""
    return secrets.compare_digest(secret_digest(secret), digest or _DUMMY_DIGEST) and (
        digest is not None
    )


def narrowing_refusal(
    permissions: PermissionMatrix, role: str, documents: Mapping[str, Access]
) -> tuple[str, str] | None:
    """Why ``documents`` (document -> access) is not a narrowing of ``role``'s row of the
    matrix: ``(message, field)``, else ``None``."""
    for doc, given in documents.items():
        allowed = permissions.access(role, doc)
        if access_rank(given) > access_rank(allowed):
            return (
                f"a document list may only narrow the {role} role: {doc} is at most"
                f" {allowed.value} for it, not {given.value}",
                f"documents.{doc}",
            )
    return None


def grant_refusal(
    permissions: PermissionMatrix,
    granter_role: str,
    granter_docs: Mapping[str, Access],
    role: str,
    documents: Mapping[str, Access] | None = None,
) -> tuple[str, str] | None:
    """Why a member of ``granter_role`` (with ``granter_docs``: their token's overrides)
    may not give someone ``role`` narrowed by ``documents``: ``(message, field)``, else
    ``None`` (see the module docstring)."""
    if role == "couple" and granter_role != "couple":
        return "only the couple may grant the couple role", "role"
    for doc in DOCUMENT_KINDS:
        given = permissions.access(role, doc, documents)
        mine = permissions.access(granter_role, doc, granter_docs)
        field = f"documents.{doc}" if documents and doc in documents else "role"
        if access_rank(given) > access_rank(mine):
            return (
                f"{role} would have {given.value} access to {doc}, above your {mine.value}",
                field,
            )
        if given.can_read:
            hidden = permissions.hidden_fields(granter_role, doc)
            if hidden - permissions.hidden_fields(role, doc):
                return f"{role} would read fields of {doc} hidden from you", field
    if granter_role == "couple":
        return None  # whose wedding it is: they delegate what they do not do themselves
    for capability, holders in permissions.capabilities().items():
        if role in holders and granter_role not in holders:
            return f"{role} has {capability!r}, which your role does not", "role"
    return None


def member_edit_refusal(
    permissions: PermissionMatrix,
    editor_role: str,
    editor_docs: Mapping[str, Access],
    *,
    editor_sub: str,
    sub: str,
    current_role: str | None,
    current_email: str | None,
    role: str,
    email: str | None,
    email_held_by_another: bool,
) -> tuple[str, str] | None:
    """Why a member may not create or change member ``sub`` as asked (``current_*``: the
    entry now, ``None`` when there is none; ``email_held_by_another``: another member of
    the wedding has ``email``): ``(message, field)``, else ``None``. Nobody grants above
    the ceiling (:func:`grant_refusal`) or changes a member above them (the couple, for a
    planner); only the couple changes another member's email or gives anyone an address
    another member holds (taking over the couple's email)."""
    if current_role != role:
        refused = grant_refusal(permissions, editor_role, editor_docs, role)
        if refused is not None:
            return refused
    if current_role is not None and sub != editor_sub:
        if grant_refusal(permissions, editor_role, editor_docs, current_role) is not None:
            return f"you may not change a member whose role is {current_role}", "sub"
    if editor_role != "couple":
        changed = current_role is not None and email != current_email
        if sub != editor_sub and changed:
            return "only the couple may change another member's email", "email"
        if email is not None and email_held_by_another and email != current_email:
            return "another member of this wedding has this email", "email"
    return None
