"""Settings read from the environment, including renamed variables."""

from __future__ import annotations

import logging

import pytest

from crdt_server.settings import Settings, SettingsError


def test_a_renamed_variable_still_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "crdt_server.settings"):
        settings = Settings.from_env({"CRDT_SERVER_TOKEN_MAX_LIFETIME_SECONDS": "3600"})
    assert settings.session_max_lifetime_seconds == 3600
    assert "CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS" in caplog.text


def test_the_new_name_wins_over_the_old_one() -> None:
    settings = Settings.from_env(
        {
            "CRDT_SERVER_TOKEN_MAX_LIFETIME_SECONDS": "3600",
            "CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS": "7200",
        }
    )
    assert settings.session_max_lifetime_seconds == 7200


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS"):
        Settings.from_env({"CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS": "soon"})
