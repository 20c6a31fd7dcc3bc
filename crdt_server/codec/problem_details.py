"""RFC 9457 problem documents (``application/problem+json``) as bytes: the body of every HTTP
error the server answers, whether through Starlette (:mod:`crdt_server.edge.problems`) or
written by the WebSocket transport outside it (:mod:`crdt_server.wire`: a refused upgrade,
a handed-over connection a stopping worker refuses)."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

import msgspec

__all__ = ["PROBLEM_JSON", "FieldProblem", "Problem", "problem_json"]

PROBLEM_JSON = "application/problem+json"


class FieldProblem(msgspec.Struct, frozen=True):
    """What is wrong with one input: ``field`` is a path such as ``ttl`` or ``ops[0].name``
    (``body`` for the body as a whole, a header's name for a header)."""

    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """An RFC 9457 problem document. ``error`` repeats ``detail`` (kept for one release, for
    clients written against the earlier ``{"error": ...}`` answers)."""

    type: str
    title: str
    status: int
    detail: str
    error: str
    errors: list[FieldProblem] = []


def problem_json(
    status: int,
    message: str,
    errors: Sequence[FieldProblem] = (),
    *,
    type: str = "about:blank",
    title: str | None = None,
) -> bytes:
    """The body of a problem+json answer (``type`` and ``title``: a problem type of its
    own, else ``about:blank`` and the status's phrase)."""
    if title is None:
        try:
            title = HTTPStatus(status).phrase
        except ValueError:
            title = "Error"
    problem = Problem(
        type=type,
        title=title,
        status=status,
        detail=message,
        error=message,
        errors=list(errors),
    )
    return msgspec.json.encode(problem)
