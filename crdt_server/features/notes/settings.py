"""The edit sessions' settings (when a session of typing in one text closes)."""

from __future__ import annotations

from dataclasses import dataclass

from crdt_server.settings import require_positive

__all__ = ["NoteSettings"]


@dataclass(frozen=True, slots=True)
class NoteSettings:
    notes_session_idle_seconds: float = 60.0
    """A person's edit session in one collaborative text (an entry's notes) closes this
    long after their last edit there, storing one ``*.notes_edited`` event."""
    notes_session_max_seconds: float = 600.0
    """An edit session closes this long after it began, however busy."""

    def __post_init__(self) -> None:
        require_positive(self, "notes_session_idle_seconds", "notes_session_max_seconds")
