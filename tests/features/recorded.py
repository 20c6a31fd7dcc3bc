"""The server's features, one of them recording the extensions it builds, so that a test
serving the app in its own process reaches that feature's extension (its ``settled()``,
its scheduler) as the server built it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Generic, TypeVar

from crdt_server.app import FEATURES
from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature

__all__ = ["Recorded"]

E = TypeVar("E", bound=Extension)


class Recorded(Generic[E]):
    """Every feature as the server has it, ``feature`` keeping each extension of type
    ``kind`` it builds in :attr:`built`, the newest last."""

    def __init__(self, feature: Feature, kind: type[E]) -> None:
        self.built: list[E] = []

        def build(built: Built) -> Sequence[Extension]:
            made = feature.build(built)
            self.built.extend(e for e in made if isinstance(e, kind))
            return made

        self.features = tuple(
            dataclasses.replace(f, build=build) if f is feature else f for f in FEATURES
        )

    @property
    def last(self) -> E:
        """The extension of the app built last."""
        return self.built[-1]
