"""The wedding domain: the four shared documents of every wedding."""

DOCUMENT_KINDS: tuple[str, ...] = ("timeline", "budget", "guests", "seating")
"""The documents every wedding has; a room name is ``{wedding_id}/{kind}``."""

__all__ = ["DOCUMENT_KINDS"]
