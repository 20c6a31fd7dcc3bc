"""The store fixtures of the storage tests (one store per backend: SQLite and PostgreSQL),
for the features' table tests that run against both; the conversation features' server and
SMTP server (tests/features/conversations.py)."""

from tests.features.conversations import api, smtp  # noqa: F401 (fixtures)
from tests.storage.conftest import (  # noqa: F401 (fixtures)
    _drop_postgres_schemas,
    backend,
    open_store,
    store,
    store_factory,
)
