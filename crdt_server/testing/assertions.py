"""Assertions with readable failures: convergence of clients, invariants of a wedding."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pycrdt import Doc

from crdt_server.codec.updates import decode_state_vector
from crdt_server.documents import DOCUMENT_KINDS, check, to_json

from .edits import content

__all__ = ["assert_converged", "assert_invariants", "document_json", "kind_of"]


def kind_of(client: Any) -> str | None:
    """The wedding document kind of a client's room (``"w1/guests"`` gives ``"guests"``)."""
    room = getattr(client, "room", None)
    if isinstance(room, str):
        kind = room.rsplit("/", 1)[-1]
        if kind in DOCUMENT_KINDS:
            return kind
    return None


def _doc(client: Any) -> Doc[Any]:
    return client if isinstance(client, Doc) else client.doc


def document_json(client: Any, kind: str | None = None) -> dict[str, Any]:
    """A client's (or a ``Doc``'s) document as JSON: the wedding export of its kind (taken
    from the client's room name unless given), else the generic roots ``m``, ``a``, ``t``.

    A Yjs document does not record the types of its roots, so the JSON view needs a schema:
    the wedding kind's, or the generic one the kit's edit strategies use.
    """
    kind = kind or kind_of(client)
    doc = _doc(client)
    return to_json(doc, kind) if kind is not None else content(doc)


def _label(client: Any, index: int) -> str:
    name = getattr(client, "index", None)
    return f"client {index}" + (f" (#{name})" if name is not None and name != index else "")


def assert_converged(*clients: Any, kind: str | None = None) -> None:
    """Every client (or ``Doc``) holds the same state (state vector) and the same JSON.

    JSON is compared in the wedding view of the clients' document kind (if their room names
    one) and in the generic view of the kit's edit strategies. The failure message names the
    first client that differs and shows both.
    """
    assert clients, "assert_converged needs at least one client"
    first = clients[0]
    kind = kind or kind_of(first)
    want_state = decode_state_vector(_doc(first).get_state())
    views: list[Callable[[Doc[Any]], Any]] = [content]
    if kind is not None:
        views.append(lambda d: to_json(d, kind))
    wants = [view(_doc(first)) for view in views]  # computed once, not once per client
    for index, other in enumerate(clients[1:], start=1):
        for view, want in zip(views, wants, strict=True):
            got = view(_doc(other))
            if got != want:
                raise AssertionError(
                    f"{_label(other, index)} differs from {_label(first, 0)}:\n"
                    f"  {_label(first, 0)}: {json.dumps(want, sort_keys=True)}\n"
                    f"  {_label(other, index)}: {json.dumps(got, sort_keys=True)}"
                )
        got_state = decode_state_vector(_doc(other).get_state())
        if got_state != want_state:
            raise AssertionError(
                f"{_label(other, index)} has state {got_state}, "
                f"{_label(first, 0)} has {want_state} (same JSON: an update is missing "
                "that changed nothing visible)"
            )


def _entity(exports: Mapping[str, Any], path: str) -> Any:
    """The exported entry at ``path`` (``seating/tables/t1``), or None."""
    parts = path.split("/")
    node: Any = exports
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list):
            node = next(
                (e for e in node if isinstance(e, Mapping) and part in e.values()),
                None,
            )
            if node is None:
                return None
        else:
            return None
    return node


def assert_invariants(wedding: Mapping[str, Any] | Any, *, allow: Collection[str] = ()) -> None:
    """The wedding's documents satisfy the domain invariants (:func:`documents.check`).

    ``wedding`` maps document kinds to documents (``Doc``, or clients holding one in
    ``.doc``); missing kinds count as empty. ``allow`` lists conflict codes the test
    accepts (``{"budget.over_total"}``: concurrent payments may legitimately overspend).
    On failure the message lists every conflict with the entries involved, as JSON.
    """
    docs: dict[str, Doc[Any]] = {kind: _doc(value) for kind, value in dict(wedding).items()}
    found = [c for c in check(docs) if c.code not in allow]
    if not found:
        return
    exports = {kind: to_json(doc, kind) for kind, doc in docs.items()}
    lines = [f"{len(found)} invariant violation(s):"]
    for conflict in found:
        lines.append(f"- {conflict.code}: {conflict.message}")
        for path in conflict.paths:
            shown = json.dumps(_entity(exports, path), sort_keys=True, ensure_ascii=False)
            lines.append(f"    {path} = {shown}")
    raise AssertionError("\n".join(lines))
