"""Collaborative text's edit sessions: a person's typing in one text is one session, closed
after a pause with one ``*.notes_edited`` event."""

from __future__ import annotations

from collections.abc import Sequence

from crdt_server.core.hooks import Extension
from crdt_server.features import Built, Feature
from crdt_server.features.events import EventLog
from crdt_server.features.notes.extension import NoteSessions
from crdt_server.features.notes.settings import NoteSettings
from crdt_server.features.notes.tables import NOTE_SESSIONS

__all__ = ["FEATURE"]


def _build(built: Built) -> Sequence[Extension]:
    return [NoteSessions(built.core, built.get(EventLog))]


FEATURE = Feature(
    "notes",
    _build,
    needs=("events",),
    schemas=(NOTE_SESSIONS,),
    settings=NoteSettings,
    event_namespaces=("document.",),
)
