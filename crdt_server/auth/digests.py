"""What the store keeps of a secret the server hands out: its digest, never the secret.

Sign-in codes and device sessions, invitations, calendar feed tokens, run sheet links and
event stream tickets are 256-bit random secrets. The store holds their SHA-256 (hex), so a
copy of the database lets nobody in; a request's secret is hashed and looked up by it.
"""

from __future__ import annotations

import hashlib

__all__ = ["secret_digest"]


def secret_digest(secret: str) -> str:
    """The hex SHA-256 of ``secret``, as the store keeps it."""
    return hashlib.sha256(secret.encode()).hexdigest()
