"""The sign-in tests' server (a real server, a real SMTP receiver, SQLite and PostgreSQL),
shared by the modules that sign people in (tests/features/signin/test_sessions.py)."""

from tests.features.signin.test_sessions import database, running  # noqa: F401 (fixtures)
