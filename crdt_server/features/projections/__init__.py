"""Projections: a document as a role with hidden fields may read it, over every sync path.

A Yjs replica cannot be filtered per connection (a reader that misses some items of a
client holds all that client's later items pending forever), so a role whose field rules
hide fields of a document (a vendor and the guests' ``notes`` and ``contact``, by default)
reads a separate room instead: ``{wedding_id}/{doc}@{role}``, written only by the server
from the committed document through an allowlist of the fields the role may read. Its
WebSocket (read-only), binary read, JSON read and HTTP sync use that room; the hidden
fields' bytes never reach it. See ``docs/guides/privacy.md`` and the field-privacy design.
"""

from crdt_server.features.projections.extension import PROJECTOR, Projections
from crdt_server.features.projections.mirror import allowlist, mirror

__all__ = ["PROJECTOR", "Projections", "allowlist", "mirror", "projections_of"]


def projections_of(extensions: object) -> Projections | None:
    """The :class:`Projections` extension among ``extensions`` (a sequence), if any."""
    for ext in extensions if isinstance(extensions, tuple | list) else ():
        if isinstance(ext, Projections):
            return ext
    return None
