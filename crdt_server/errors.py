"""Close codes and the small error hierarchy; every error a peer can cause carries its code."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

__all__ = [
    "CLOSE_CODE_ADVICE",
    "ClientIdTaken",
    "CloseCode",
    "Conflict",
    "DocumentTooLarge",
    "DomainError",
    "ExportError",
    "Forbidden",
    "Gone",
    "Impossible",
    "Malformed",
    "MessageTooBig",
    "NotAMember",
    "NotFound",
    "PROBLEM_TYPES",
    "Overloaded",
    "PolicyViolation",
    "ProtocolError",
    "Quarantined",
    "PeerError",
    "SessionEnded",
    "TooLarge",
    "TooMany",
    "TooManyItems",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedData",
    "UnsupportedMedia",
]


class CloseCode(IntEnum):
    """WebSocket close codes this server sends after a connection was accepted.

    44xx codes are permanent (the client should not retry as is); 1011, 1012 and 1013 are
    transient (reconnect and resync; Yjs sync is state based, so nothing is lost).
    """

    NORMAL = 1000
    PROTOCOL_ERROR = 1002
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
    CLIENT_ID_TAKEN = 4409


CLOSE_CODE_ADVICE: dict[CloseCode, tuple[str, str]] = {
    CloseCode.NORMAL: ("normal closure (the client or the server is done)", "nothing"),
    CloseCode.PROTOCOL_ERROR: (
        "WebSocket protocol error (an unmasked frame, reserved bits, a bad fragment or "
        "control frame)",
        "fix the client",
    ),
    CloseCode.UNSUPPORTED_DATA: ("text frame (the protocol is binary)", "fix the client"),
    CloseCode.INVALID_PAYLOAD: (
        "malformed message or invalid Yjs update / awareness",
        "fix the client",
    ),
    CloseCode.POLICY_VIOLATION: (
        "policy: e.g. an awareness state over the size limit, too many updates per second",
        "fix the client",
    ),
    CloseCode.MESSAGE_TOO_BIG: (
        "message larger than `CRDT_SERVER_MAX_MESSAGE_BYTES`, an update of more structs and "
        "delete ranges than `CRDT_SERVER_MAX_UPDATE_ITEMS`, a document past "
        "`CRDT_SERVER_MAX_DOCUMENT_BYTES`, or a wedding past its storage quota "
        "`CRDT_SERVER_MAX_WEDDING_BYTES`",
        "send smaller updates",
    ),
    CloseCode.INTERNAL_ERROR: (
        "internal error (e.g. the store could not commit)",
        "reconnect (transient)",
    ),
    CloseCode.SERVICE_RESTART: ("server restart (graceful shutdown)", "reconnect (transient)"),
    CloseCode.TRY_AGAIN_LATER: (
        "try again later: slow consumer, overload, or the room holds as much out-of-order "
        "content as it may",
        "reconnect (transient)",
    ),
    CloseCode.TOKEN_EXPIRED: ("token expired or revoked", "get a new token"),
    CloseCode.FORBIDDEN: ("forbidden", "do not retry"),
    CloseCode.DOCUMENT_DELETED: (
        "document deleted (the wedding was erased; its upgrades now get 410)",
        "do not retry",
    ),
    CloseCode.CLIENT_ID_TAKEN: (
        "the update writes new items under a Yjs client id another person owns (each id "
        "belongs to whoever first wrote under it), or other content than the server holds "
        "at a (client, clock) of an id its sender does not own",
        "start a new `Y.Doc` (a new client id) from the server's state and apply your "
        "unsent edits to it as new edits (stock Yjs picks a new id when it sees its own "
        "clock advanced remotely)",
    ),
}
"""What each close code means and what a client should do about it (the reference page of
close codes is generated from this table)."""


class PeerError(Exception):
    """Base of the errors that end a connection; ``close_code`` says how."""

    close_code: CloseCode = CloseCode.INTERNAL_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProtocolError(PeerError):
    """A frame is not a well-formed y-protocols message, or its update is not valid Yjs."""

    close_code = CloseCode.INVALID_PAYLOAD


class Quarantined(ProtocolError):
    """The update carries a Yjs client id quarantined in this room: an update of that
    client was being applied when the server stopped turning (1007 on the socket, 422 over
    HTTP), until an operator runs ``crdt-server quarantine lift``."""


class ClientIdTaken(PeerError):
    """An update whose new items name a Yjs client id owned by another person (or by the
    server), or that holds other content than the document at clocks it holds under an id
    its sender does not own (:func:`crdt_server.core.client_ids.differing`): refused
    whole, nothing applied (4409 on ``/sync``, a CLOSE of that document alone on
    ``/collab``, 422 over HTTP); ``client_id`` is the id."""

    close_code = CloseCode.CLIENT_ID_TAKEN

    def __init__(self, client_id: int) -> None:
        super().__init__(
            f"client_id_taken: Yjs client id {client_id} belongs to someone else;"
            " start a new Y.Doc and apply your unsent edits to it"
        )
        self.client_id = client_id


class UnsupportedData(PeerError):
    """A text frame: the protocol is binary."""

    close_code = CloseCode.UNSUPPORTED_DATA


class MessageTooBig(PeerError):
    """A frame larger than the configured maximum."""

    close_code = CloseCode.MESSAGE_TOO_BIG


class TooManyItems(MessageTooBig):
    """An update holding more structs and delete ranges than
    ``CRDT_SERVER_MAX_UPDATE_ITEMS`` (1009 on ``/sync``, 413 over HTTP). On ``/collab`` it
    closes its document alone (a CLOSE message whose reason starts with 1009): it is the
    document's message, not the socket's, and the socket's other documents carry on."""


class DocumentTooLarge(PeerError):
    """Applying the update would grow the document past its configured maximum, or its
    wedding's documents past the wedding's storage quota."""

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


class DomainError(Exception):
    """What a feature refuses a caller, said in the domain's words: the edge alone maps each
    kind to an HTTP status (:func:`crdt_server.edge.problems.translate`), so features never
    name a status.

    ``message`` is a sentence for people; ``field`` names the input at fault (``seq``,
    ``body``, ``limit``, a header's name), or ``fields`` several, each with its own message;
    ``retry_after`` (seconds) says when asking again may work. ``problem_type`` is the
    problem's ``type`` (RFC 9457): ``about:blank`` (the status says it all) unless a kind
    of refusal a client must tell apart has a type of its own (:data:`PROBLEM_TYPES`).
    """

    problem_type = "about:blank"
    problem_title: str | None = None

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        fields: Sequence[tuple[str, str]] = (),
        retry_after: int | None = None,
    ) -> None:
        detail = f"{field}: {message}" if field is not None else message
        super().__init__(detail)
        self.message = detail
        self.fields: list[tuple[str, str]] = (
            [(field, message), *fields] if field is not None else list(fields)
        )
        self.retry_after = retry_after


class Malformed(DomainError):
    """The input is not what the route reads (a field of the wrong type or shape)."""


class Unauthenticated(DomainError):
    """The credential is missing, invalid, expired or revoked."""


class Forbidden(DomainError):
    """The caller is known and may not do this."""


class NotFound(DomainError):
    """No such thing (or none the caller may know of)."""


class NotAMember(Forbidden):
    """The person is signed in, and no member of the wedding asked for (removed, or never
    one): a client forgets what it keeps of that wedding."""

    problem_type = "urn:crdt-server:problem:not-a-member"
    problem_title = "Not a member"


class SessionEnded(Unauthenticated):
    """The device session is over (signed out, signed out everywhere, revoked from another
    device, idle too long, or the person erased): a client forgets what it keeps."""

    problem_type = "urn:crdt-server:problem:session-ended"
    problem_title = "Session ended"


PROBLEM_TYPES: dict[str, str] = {
    NotAMember.problem_type: "the person is no member of the wedding (removed, or never "
    "one): forget the wedding's local copies",
    SessionEnded.problem_type: "the device session ended (signed out, revoked, idle, "
    "erased): forget what this device keeps",
}
"""The problem types that are not ``about:blank``, and what each tells a client (the
sign-in guide lists them)."""


class Conflict(DomainError):
    """The request disagrees with the current state (a reused idempotency key, a duplicate)."""


class Gone(DomainError):
    """The thing existed and is gone for good (erased, revoked, expired)."""


class TooLarge(DomainError):
    """The input is over a size limit."""


class UnsupportedMedia(DomainError):
    """The body is not of a media type the route reads."""


class Impossible(DomainError):
    """Well formed, but it cannot be done as asked (nothing was changed)."""


class TooMany(DomainError):
    """Over a limit on how many or how often; ``retry_after`` says when to ask again."""


class Unavailable(DomainError):
    """It cannot be done now, for a reason of the server's (the store cannot commit: a full
    disk, a lock held past the busy timeout, a lost database connection), and nothing was
    changed: the same request may succeed later. ``retry_after`` (seconds) says when to
    ask again; without it the edge says soon."""
