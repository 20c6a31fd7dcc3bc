"""What the wire needs from the checks made at an upgrade, and the answer to a refused one.

The native protocol (:mod:`crdt_server.wire.websocket`) parses an upgrade's head itself and
asks a gate whether to let it in; the gate (:class:`crdt_server.edge.upgrade.Gate`: name,
origin, rate, token, open connections) lives in the edge, above the wire, so the wire knows
it only as the :class:`UpgradeGate` protocol, found in the lifespan state under
:data:`STATE_KEY`. A refusal is an HTTP status and a short text (problem+json), because the
stock y-websocket client reconnects at once after any accepted-then-closed socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from crdt_server.codec.credentials import bearer_token, query_token
from crdt_server.codec.problem_details import PROBLEM_JSON, problem_json
from crdt_server.settings import Settings
from crdt_server.wire.transport import Transport

__all__ = [
    "COLLAB_PATH",
    "NO_SUCH_DOCUMENT",
    "STATE_KEY",
    "SYNC_PREFIX",
    "Refusal",
    "UpgradeGate",
    "admit_path",
    "gated",
]

STATE_KEY = "crdt_server.wire.gate"
"""The key of the gate in the ASGI lifespan state the app yields."""
SYNC_PREFIX = "/sync/"
"""The sync path's prefix: ``/sync/{wedding_id}/{doc}``."""
COLLAB_PATH = "/collab"
"""The Hocuspocus path: ``/collab`` (any wedding) or ``/collab/{wedding_id}``."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """An upgrade refused with an HTTP answer: problem+json, as every HTTP error."""

    status: int
    message: str
    retry_after: int | None = None
    """Seconds, for a 429 (``Retry-After``)."""

    def body(self) -> bytes:
        return problem_json(self.status, self.message)

    def headers(self) -> list[tuple[str, str]]:
        """The answer's headers beyond content-length and connection."""
        found = [("content-type", PROBLEM_JSON)]
        if self.retry_after is not None:
            found.append(("retry-after", str(self.retry_after)))
        return found


NO_SUCH_DOCUMENT = Refusal(404, "no such document")


A = TypeVar("A")
"""What the gate returns for a connection it lets in; the wire hands it back to ``serve``."""


class _Count(Protocol):
    def inc(self) -> None: ...


class _Labelled(Protocol):
    def labels(self, *values: str) -> _Count: ...


class _HandOffMetrics(Protocol):
    @property
    def handed_off(self) -> _Labelled:
        """Connections handed to their owner worker, by worker index."""

    @property
    def served_off_owner(self) -> _Count:
        """Connections served here because their owner could not take them."""


class _Registry(Protocol):
    @property
    def metrics(self) -> _HandOffMetrics: ...


class UpgradeGate(Protocol[A]):
    """The checks of an upgrade, and the serving of a connection let in."""

    @property
    def settings(self) -> Settings: ...

    @property
    def registry(self) -> _Registry: ...

    def admit(
        self,
        wedding_id: str,
        doc: str,
        *,
        token: str | None,
        headers: Mapping[str, str],
        address: str,
    ) -> A | Refusal:
        """Let the upgrade in (it must then be served) or refuse it. ``headers`` has
        lower-case names."""

    def admit_socket(
        self, wedding_id: str | None, *, headers: Mapping[str, str], address: str
    ) -> A | Refusal:
        """Let a Hocuspocus socket in (its documents' tokens come in band) or refuse it;
        ``wedding_id``: the one wedding its documents may belong to."""

    def refuse(self, refusal: Refusal) -> Refusal:
        """Count a refusal the wire made itself, and return it."""

    async def serve(self, transport: Transport, admitted: A, *, peer: str) -> None:
        """Run the accepted connection to its end."""


def gated(path: str) -> bool:
    """Whether the gate answers an upgrade of ``path``: the sync path or the Hocuspocus one."""
    return path.startswith(SYNC_PREFIX) or path == COLLAB_PATH or path.startswith(COLLAB_PATH + "/")


def admit_path(
    gate: UpgradeGate[A], path: str, query: str, headers: Mapping[str, str], address: str
) -> A | Refusal:
    """Ask ``gate`` about an upgrade of the sync path ``path`` (percent-decoded) whose
    query string is ``query``, or of the Hocuspocus path; a path that names no document
    (or, under ``/collab/``, no wedding) is refused with 404."""
    if not path.startswith(SYNC_PREFIX):
        wedding = path[len(COLLAB_PATH) + 1 :] or None
        if wedding is not None and "/" in wedding:
            return gate.refuse(NO_SUCH_DOCUMENT)
        return gate.admit_socket(wedding, headers=headers, address=address)
    wedding_id, slash, doc = path[len(SYNC_PREFIX) :].partition("/")
    if not slash or "/" in doc:
        return gate.refuse(NO_SUCH_DOCUMENT)
    return gate.admit(
        wedding_id,
        doc,
        token=bearer_token(query_token(query), headers.get("authorization")),
        headers=headers,
        address=address,
    )
