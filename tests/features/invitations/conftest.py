"""The sign-in tests' server (a real server, a real SMTP receiver, SQLite and PostgreSQL),
for the tests of what becomes of an invitee's address (test_invitee_addresses.py)."""

from tests.features.signin.test_sessions import database, running  # noqa: F401 (fixtures)
