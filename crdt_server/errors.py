"""Close codes and the small error hierarchy; every error a peer can cause carries its code."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "CloseCode",
    "DocumentTooLarge",
    "ExportError",
    "MessageTooBig",
    "Overloaded",
    "PolicyViolation",
    "ProtocolError",
    "PeerError",
    "UnsupportedData",
]


class CloseCode(IntEnum):
    """WebSocket close codes this server sends after a connection was accepted.

    44xx codes are permanent (the client should not retry as is); 1011, 1012 and 1013 are
    transient (reconnect and resync; Yjs sync is state based, so nothing is lost).
    """

    NORMAL = 1000
    UNSUPPORTED_DATA = 1003
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    TOKEN_EXPIRED = 4401
    FORBIDDEN = 4403
    DOCUMENT_DELETED = 4404


class PeerError(Exception):
    """Base of the errors that end a connection; ``close_code`` says how."""

    close_code: CloseCode = CloseCode.INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(PeerError):
    """A frame is not a well-formed y-protocols message, or its update is not valid Yjs."""

    close_code = CloseCode.INVALID_PAYLOAD


class UnsupportedData(PeerError):
    """A text frame: the protocol is binary."""

    close_code = CloseCode.UNSUPPORTED_DATA


class MessageTooBig(PeerError):
    """A frame larger than the configured maximum."""

    close_code = CloseCode.MESSAGE_TOO_BIG


class DocumentTooLarge(PeerError):
    """Applying the update would grow the document past its configured maximum."""

    close_code = CloseCode.MESSAGE_TOO_BIG


class PolicyViolation(PeerError):
    """The peer broke a rule that is not about encoding (e.g. speaking for another client)."""

    close_code = CloseCode.POLICY_VIOLATION


class Overloaded(PeerError):
    """The server or this connection is over a limit; try again later."""

    close_code = CloseCode.TRY_AGAIN_LATER


class ExportError(ValueError):
    """A wedding export file (or a wedding being exported) is not what the format
    promises (``crdt_server.tools.export``); ``field`` names the part at fault
    (``documents.guests.update``, ``threads.threads[0].messages[2].seq``). Here, not in the
    tools, so that a feature reading its own section of the file can raise it too."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
