"""What the core needs to know of the documents it serves, as narrow protocols.

The core (rooms, the registry, :class:`~crdt_server.core.weddings.WeddingService`) knows no
domain: which rooms hold documents of a domain, how to record what an update changed in
one, how to show one as JSON and how to run an operation on one are given to it. The
wedding domain implements :class:`Domain` (:data:`crdt_server.documents.domain.WEDDINGS`);
the extensions that want change records name it (:attr:`Extension.domain
<crdt_server.core.hooks.Extension.domain>`), and ``app.py`` gives it to the
``WeddingService``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Protocol

from pycrdt import Doc

__all__ = ["ChangeRecord", "Domain", "Recorder"]


class ChangeRecord(Protocol):
    """What one integration changed in one entry of a document, as the domain records it.

    The core only carries records from the :class:`Recorder` to the hooks
    (:attr:`PendingUpdate.changes <crdt_server.core.hooks.PendingUpdate.changes>`); a
    feature that reads more than which entry changed narrows them to the domain's own type
    (:func:`crdt_server.documents.changes.entry_changes`).
    """

    @property
    def root(self) -> str:
        """The root of the document the entry is in."""
        ...

    @property
    def id(self) -> str:
        """The entry's key in its root."""
        ...


class Recorder(Protocol):
    """Collects the change records of one document's integrations, until taken."""

    def take(self) -> Sequence[ChangeRecord]:
        """The records collected since the last call (then forgotten)."""
        ...

    def discard(self) -> None:
        """Forget what was collected."""
        ...

    def close(self) -> None:
        """Stop observing the document."""
        ...


class Domain(Protocol):
    """The documents a server serves: their kinds, and what the core does with one."""

    @property
    def kinds(self) -> Collection[str]:
        """The document kinds of the domain (a room ``{wedding}/{kind}``), in their order;
        other rooms (derived ones, unknown kinds) are synced but neither recorded nor
        watched for races."""
        ...

    def recorder(
        self, doc: Doc[Any], kind: str, on_error: Callable[[BaseException], None]
    ) -> Recorder:
        """A recorder of ``doc`` (a document of ``kind``, one of :attr:`kinds`); it tells
        ``on_error`` of what it could not read and must never raise into pycrdt."""
        ...

    def to_json(
        self,
        doc: Doc[Any],
        kind: str,
        *,
        rich: bool = False,
        related: Mapping[str, Doc[Any]] | None = None,
    ) -> dict[str, Any]:
        """The room's document as JSON: one of :attr:`kinds`, or another room the domain
        keeps beside them (the wedding's findings); never raises on what clients stored.
        ``related``: documents of the same wedding the view may also read (those
        :meth:`context` names, the caller may read)."""
        ...

    def context(self, kind: str, op: Mapping[str, Any] | None = None) -> Collection[str]:
        """The other kinds of the wedding that the operation ``op`` on a ``kind`` document
        reads (``None``: that its JSON view reads); their documents are given to
        :meth:`operate` and :meth:`to_json` as ``related``. A caller on behalf of a
        person gives those the person may read, and refuses the operation if one that
        :meth:`needs` names is not among them."""
        ...

    def needs(self, kind: str, op: Mapping[str, Any]) -> Collection[str]:
        """Of the kinds :meth:`context` names for ``op``, those it cannot run without
        (the others, where given, make its checks count more: a full table counts plus-ones
        when the guest list is known)."""
        ...

    def operate(
        self,
        doc: Doc[Any],
        kind: str,
        op: Mapping[str, Any],
        *,
        origin: str,
        related: Mapping[str, Doc[Any]] | None = None,
    ) -> dict[str, Any]:
        """Run the operation ``op`` on ``doc`` in one transaction of ``origin``; raises
        the domain's error (nothing changed) for an invalid one. ``related``: copies of the
        documents :meth:`context` names for it."""
        ...

    def forget(self, doc: Doc[Any], kind: str, person: str) -> bool:
        """Remove everything ``doc`` (a document of ``kind``) holds of one person of the
        domain (a wedding's guest: their entry, their seat); whether anything was there.
        The erasure runs it on every document of the wedding, then folds their logs."""
        ...

    def person_paths(self, person: str) -> Collection[str]:
        """The entry paths (``kind/root/id``) that hold one person: stored events naming
        one of them (a finding about that entry, which may quote its values) go with the
        person's erasure."""
        ...
