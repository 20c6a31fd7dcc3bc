"""Settings read from the environment, including withdrawn variables and the features'
settings fragments."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from crdt_server.app import FEATURES
from crdt_server.features import fragments_of
from crdt_server.settings import Settings, SettingsError, require_positive, variables


@pytest.mark.parametrize(
    ("variable", "value", "replacement"),
    [
        ("CRDT_SERVER_WEBSOCKET_STACK", "uvicorn", "native stack"),
        ("CRDT_SERVER_WEBSOCKET_COMPRESSION", "true", "no permessage-deflate"),
        ("CRDT_SERVER_WEBSOCKET_COMPRESSION", "maybe", "no permessage-deflate"),
        ("CRDT_SERVER_TOKEN_MAX_LIFETIME_SECONDS", "3600", "SESSION_MAX_LIFETIME_SECONDS"),
    ],
)
def test_a_withdrawn_variable_is_refused_naming_what_replaced_it(
    variable: str, value: str, replacement: str
) -> None:
    with pytest.raises(SettingsError, match=f"{variable} is withdrawn.*{replacement}"):
        Settings.from_env({variable: value})


def test_a_withdrawn_variable_set_to_its_old_default_is_accepted() -> None:
    settings = Settings.from_env(
        {"CRDT_SERVER_WEBSOCKET_STACK": "native", "CRDT_SERVER_WEBSOCKET_COMPRESSION": "False"}
    )
    assert settings == Settings.from_env({})
    assert not hasattr(settings, "websocket_stack")
    assert not hasattr(settings, "websocket_compression")


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS"):
        Settings.from_env({"CRDT_SERVER_SESSION_MAX_LIFETIME_SECONDS": "soon"})


def test_the_app_transport_is_collab_by_default_and_only_collab_or_sync() -> None:
    assert Settings.from_env({}).app_transport == "collab"
    assert Settings.from_env({"CRDT_SERVER_APP_TRANSPORT": "sync"}).app_transport == "sync"
    with pytest.raises(SettingsError, match="app_transport must be collab or sync"):
        Settings.from_env({"CRDT_SERVER_APP_TRANSPORT": "websocket"})


# -- settings fragments (a feature's own settings) ---------------------------------------


@dataclass(frozen=True, slots=True)
class ContractSettings:
    contract_reminder_days: int = 7
    """Days before a deadline its signer is reminded."""
    contract_sign_url: str = ""

    def __post_init__(self) -> None:
        require_positive(self, "contract_reminder_days")


def test_a_fragment_is_read_from_its_variables_and_overrides() -> None:
    env = {"CRDT_SERVER_CONTRACT_REMINDER_DAYS": "3", "CRDT_SERVER_PORT": "9000"}
    settings = Settings.from_env(env, fragments=[ContractSettings], contract_sign_url="x")
    assert settings.port == 9000
    assert settings.fragment(ContractSettings) == ContractSettings(3, "x")
    # A fragment the settings were not given reads as its defaults; its variables are unread.
    assert Settings.from_env(env).fragment(ContractSettings) == ContractSettings()
    assert Settings().fragment(ContractSettings) == ContractSettings()
    given = Settings(fragments=(ContractSettings(1),))
    assert given.fragment(ContractSettings).contract_reminder_days == 1


def test_a_bad_fragment_value_names_the_variable_or_the_field() -> None:
    kinds = [ContractSettings]
    with pytest.raises(SettingsError, match="CRDT_SERVER_CONTRACT_REMINDER_DAYS"):
        Settings.from_env({"CRDT_SERVER_CONTRACT_REMINDER_DAYS": "soon"}, fragments=kinds)
    with pytest.raises(SettingsError, match="contract_reminder_days must be positive"):
        Settings.from_env({"CRDT_SERVER_CONTRACT_REMINDER_DAYS": "0"}, fragments=kinds)
    with pytest.raises(TypeError, match="no setting named 'contract_typo'"):
        Settings.from_env({}, fragments=[ContractSettings], contract_typo=1)


def test_a_name_taken_twice_or_a_fragment_given_twice_is_refused() -> None:
    @dataclass(frozen=True)
    class Clash:
        port: int = 1

    with pytest.raises(SettingsError, match="CRDT_SERVER_PORT"):
        variables([Clash])
    with pytest.raises(SettingsError, match="twice"):
        Settings(fragments=(ContractSettings(), ContractSettings(2)))


def test_the_environment_builds_the_same_settings_again() -> None:
    """What ``serve --workers`` hands its workers: every setting, the fragments' too."""
    kinds = fragments_of(FEATURES)
    settings = Settings.from_env(
        {"CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE": "true", "CRDT_SERVER_SMTP_URL": "smtp://mail:25"},
        fragments=kinds,
        port=1234,
    )
    env = settings.environment()
    assert env["CRDT_SERVER_WEBHOOK_ALLOW_PRIVATE"] == "True"
    assert "CRDT_SERVER_FRAGMENTS" not in env
    assert set(env) == set(variables(kinds))
    assert Settings.from_env(env, fragments=kinds) == settings


def test_sqlite_commits_is_auto_loop_or_thread() -> None:
    assert Settings().sqlite_commits_on == "auto"
    assert Settings(sqlite_commits="loop").sqlite_commits_on == "loop"
    several = Settings(workers=2, redis_url="redis://127.0.0.1:6379/0")
    assert several.sqlite_commits_on == "auto"  # the writer thread, as for one process
    forced = Settings(workers=2, redis_url="redis://127.0.0.1:6379/0", sqlite_commits="loop")
    assert forced.sqlite_commits_on == "loop"
    with pytest.raises(SettingsError, match="sqlite_commits must be auto, loop or thread"):
        Settings.from_env({"CRDT_SERVER_SQLITE_COMMITS": "elsewhere"})


def test_the_database_answer_timeout_must_exceed_the_lock_timeout() -> None:
    """Issue 74: a wait for the lock fails cleanly (lock_timeout) before the connection is
    dropped for not answering; every PostgreSQL timeout is positive."""
    settings = Settings.from_env(
        {
            "CRDT_SERVER_DATABASE_LOCK_TIMEOUT_SECONDS": "3",
            "CRDT_SERVER_DATABASE_ANSWER_TIMEOUT_SECONDS": "4",
            "CRDT_SERVER_DATABASE_IDLE_TIMEOUT_SECONDS": "1.5",
        }
    )
    assert settings.database_answer_timeout_seconds == 4
    with pytest.raises(SettingsError, match="must exceed the lock timeout"):
        Settings.from_env({"CRDT_SERVER_DATABASE_ANSWER_TIMEOUT_SECONDS": "5"})
    with pytest.raises(SettingsError, match="database_idle_timeout_seconds must be positive"):
        Settings.from_env({"CRDT_SERVER_DATABASE_IDLE_TIMEOUT_SECONDS": "0"})
