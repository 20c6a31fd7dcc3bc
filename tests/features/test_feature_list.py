"""The feature list (``crdt_server.app.FEATURES``): the one place that names features.

A feature left out of the list creates none of its tables and serves none of its routes;
on a store that has its tables already, nothing of them is dropped or altered; a feature
that needs one the list does not build before it stops the start with a clear error.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from crdt_server.app import CORE_SCHEMAS, FEATURES, create_app
from crdt_server.cli import _parser as cli_parser
from crdt_server.features import (
    Built,
    Feature,
    MissingFeature,
    UndeclaredNeed,
    assembled,
    fragments_of,
    schemas_of,
)
from crdt_server.features import events as events_feature
from crdt_server.features import notifications as notifications_feature
from crdt_server.features import people as people_feature
from crdt_server.features import threads as threads_feature
from crdt_server.features.events import EventLog
from crdt_server.features.webhooks.settings import WebhookSettings
from crdt_server.settings import Settings, variables
from crdt_server.storage import Gateway, Table, schema_of
from crdt_server.testing.tokens import TokenMinter
from tests.project.test_docs import _generator as reference_generator

pytestmark = [pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
SECRET = "feature-list-test-secret-at-least-32-bytes"
MINT = TokenMinter(SECRET)


def settings_in(data: Path) -> Settings:
    return Settings(data_dir=data, auth_secret=SECRET)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The app under real uvicorn on an ephemeral port, and a client to it."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:
                assert not task.done(), "the server did not start"
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        server.should_exit = True
        await task


def objects(path: Path) -> dict[tuple[str, str], str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
    return {(str(t), str(n)): str(s) for t, n, s in rows}


def tables_of(feature: Feature) -> set[str]:
    """The tables a feature's schemas make, under their first names and those their
    migrations give them."""
    return {
        statement.split("(")[0].split()[-1].strip('"')
        for schema in feature.schemas
        for statement in schema.sqlite
        if statement.lstrip().upper().startswith("CREATE TABLE")
    } | {new for schema in feature.schemas for m in schema.migrations for _, new in m.renames}


def paths_of(feature: Feature) -> set[str]:
    return {route.path for route in feature.routes()}


def test_every_feature_has_a_name_and_the_list_names_each_once() -> None:
    names = [feature.name for feature in FEATURES]
    assert len(names) == len(set(names)), names
    # Each brings something: tables, routes, bus messages or job kinds (notes: hooks only).
    assert all(
        tables_of(f) or paths_of(f) or f.bus or f.jobs for f in FEATURES if f.name != "notes"
    )


def _nothing(built: Built) -> list[Any]:
    return []


def test_each_feature_comes_after_the_features_it_needs() -> None:
    """``FEATURES`` is assembled: every need names a feature of the list, earlier in it;
    a list with a need after its user (or without it) is refused, naming both."""
    names = [feature.name for feature in FEATURES]
    for feature in FEATURES:
        for need in feature.needs:
            assert names.index(need) < names.index(feature.name), (feature.name, need)
    first, second = Feature("first", _nothing), Feature("second", _nothing, needs=("first",))
    assert assembled((first, second)) == (first, second)
    with pytest.raises(MissingFeature, match="'second' needs 'first'"):
        assembled((second, first))
    with pytest.raises(MissingFeature, match="'second' needs 'first'"):
        assembled((second,))


def test_no_extension_checks_whether_it_was_started() -> None:
    """Extensions are built with the store open and the core there, and given what they
    use: none keeps an ``Optional`` until its start and checks it on every use."""
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "crdt_server").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "not been started" in line
    ]
    assert not found, found


@pytest.mark.asyncio
async def test_a_build_that_takes_a_feature_it_does_not_declare_stops_the_start(
    tmp_path: Path,
) -> None:
    """``Built.get`` hands a feature only the extensions of the features it declares in
    ``needs``, so the declaration cannot fall behind the code."""

    def greedy(built: Built) -> list[Any]:
        built.get(EventLog)
        return []

    features = (events_feature.FEATURE, Feature("greedy", greedy))
    app = create_app(settings_in(tmp_path), features=features)
    with pytest.raises(UndeclaredNeed, match="'greedy' uses EventLog of 'events'"):
        async with app.router.lifespan_context(app):
            pass
    declared = (events_feature.FEATURE, Feature("greedy", greedy, needs=("events",)))
    app = create_app(settings_in(tmp_path), features=declared)
    async with app.router.lifespan_context(app):
        pass


@pytest.mark.asyncio
async def test_a_started_server_has_installed_its_features_schemas_and_no_other(
    tmp_path: Path,
) -> None:
    """Every table a running server made is one its features declare (``schemas``: what
    the data commands and the schema listing know), each of those is there, and nothing
    installs one beside them: an extension that installed an undeclared table at start
    (or in ``build``) would add a row to ``schema_versions``."""
    app = create_app(settings_in(tmp_path))
    async with app.router.lifespan_context(app):
        with sqlite3.connect(tmp_path / "crdt.sqlite3") as conn:
            rows = conn.execute("SELECT name FROM schema_versions").fetchall()
    declared = {schema.name for schema in (*CORE_SCHEMAS, *schemas_of(FEATURES))}
    assert {str(name) for (name,) in rows} == declared | {"store"}
    # A schema two features list (one reads the other's tables) is one and the same.
    once = {schema.name: schema for schema in schemas_of(FEATURES)}
    assert all(once[schema.name] is schema for f in FEATURES for schema in f.schemas)


KEPT = schema_of(
    "kept", Table("kept_keys", "(id {int} PRIMARY KEY, key {text} NOT NULL)", wedding=False)
)


@pytest.mark.asyncio
async def test_a_build_finds_its_feature_s_tables_installed(tmp_path: Path) -> None:
    """The features' tables are installed before any ``build``: one that reads a key kept
    in its own table (as the push and RSVP features do) finds the table there."""
    read: list[int] = []

    async def build(built: Built) -> list[Any]:
        gateway = Gateway.of(built.core.store)
        read.append(len(await gateway.fetch("SELECT key FROM {t}kept_keys")))
        return []

    features = (events_feature.FEATURE, Feature("kept", build, schemas=(KEPT,)))
    app = create_app(settings_in(tmp_path), features=features)
    async with app.router.lifespan_context(app):
        pass
    assert read == [0]


@pytest.mark.asyncio
async def test_a_feature_left_out_creates_no_table_and_serves_no_route(tmp_path: Path) -> None:
    app = create_app(settings_in(tmp_path), features=(events_feature.FEATURE,))
    async with serving(app) as client:
        spec = (await client.get("/openapi.json")).json()
        headers = MINT.headers(wedding="w1", role="couple")
        assert (await client.get("/api/weddings/w1/events", headers=headers)).status_code == 200
        for feature in FEATURES:
            if feature.name == "events":
                continue
            for path in paths_of(feature):
                assert path not in spec["paths"], (feature.name, path)
            concrete = next(iter(sorted(paths_of(feature))), None)
            if concrete is not None:
                url = concrete.replace("{wedding_id}", "w1").replace("{doc}", "guests")
                url = url.replace("{", "x").replace("}", "")
                answer = await client.get(url, headers=headers)
                assert answer.status_code in (404, 405), (feature.name, url, answer.text)
    stored = {name for kind, name in objects(tmp_path / "crdt.sqlite3") if kind == "table"}
    for feature in FEATURES:
        if feature.name != "events":
            assert not tables_of(feature) & stored, feature.name
    # The event log's own table belongs to the core store: events were served.
    assert "events" in stored


@pytest.mark.asyncio
async def test_leaving_a_feature_out_later_drops_and_alters_nothing(tmp_path: Path) -> None:
    async with serving(create_app(settings_in(tmp_path))):
        pass
    path = tmp_path / "crdt.sqlite3"
    every = tables_of(next(f for f in FEATURES if f.name == "versions"))
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO versions (doc, seq, wedding, at, actors, state) VALUES (?, ?, ?, ?, ?, ?)",
            ("w1/guests", 1, "w1", 0.0, "[]", b"\x00\x00"),
        )
    before = objects(path)
    assert every <= {name for _, name in before}
    async with serving(create_app(settings_in(tmp_path), features=(events_feature.FEATURE,))):
        pass
    after = objects(path)
    assert {k: v for k, v in after.items() if k in before} == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM versions").fetchone() == (1,)


@pytest.mark.asyncio
async def test_a_feature_whose_dependency_is_missing_stops_the_start(tmp_path: Path) -> None:
    app = create_app(settings_in(tmp_path), features=(threads_feature.FEATURE,))
    with pytest.raises(MissingFeature, match="'threads' needs 'events'"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("features", "missing"),
    [
        ((events_feature, notifications_feature, threads_feature), "'people'"),
        ((events_feature, people_feature, threads_feature), "'notifications'"),
        ((events_feature, threads_feature, people_feature, notifications_feature), "'people'"),
        ((notifications_feature, people_feature), "'people'"),
    ],
)
async def test_threads_need_people_and_notifications_before_them(
    tmp_path: Path, features: tuple[Any, ...], missing: str
) -> None:
    """Threads build on the member directory and notifications, notifications on the
    directory: a list without them (or with them after) names the one missing."""
    app = create_app(settings_in(tmp_path), features=tuple(f.FEATURE for f in features))
    with pytest.raises(MissingFeature, match=missing):
        async with app.router.lifespan_context(app):
            pass
    # Stopped before the store opened: no table of any feature was made.
    assert not (tmp_path / "crdt.sqlite3").exists() or not {
        name for kind, name in objects(tmp_path / "crdt.sqlite3") if kind == "table"
    } & {"members", "notifications", "threads"}


@pytest.mark.asyncio
async def test_people_and_notifications_run_without_threads(tmp_path: Path) -> None:
    """The directory and the inbox are features of their own: without threads they make
    their tables (and none of the threads'), and the directory fills from connections."""
    features = (events_feature.FEATURE, people_feature.FEATURE, notifications_feature.FEATURE)
    async with serving(create_app(settings_in(tmp_path), features=features)):
        pass
    stored = {name for kind, name in objects(tmp_path / "crdt.sqlite3") if kind == "table"}
    assert {"members", "notifications", "notification_outbox"} <= stored
    assert not tables_of(threads_feature.FEATURE) & stored
    with sqlite3.connect(tmp_path / "crdt.sqlite3") as conn:
        versions = dict(conn.execute("SELECT name, version FROM schema_versions").fetchall())
    # version 2 renamed the tables out of thread_, version 3 added members.last_seen,
    # version 4 what each vendor reads of the guest list
    assert versions.get("people") == 4
    assert versions.get("notifications") == 2
    assert "threads" not in versions


def test_only_the_app_names_features() -> None:
    """No module outside ``crdt_server/features/`` imports a feature but the app factory
    (the list) and the CLI (which takes the list from it)."""
    offenders = []
    for path in sorted((ROOT / "crdt_server").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("crdt_server/features/") or relative == "crdt_server/app.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), relative)):
            # The package itself (Feature, Command) names no feature.
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "crdt_server.features."
            ):
                offenders.append(f"{relative}: {node.module}")
    assert offenders == []


def test_a_feature_left_out_reads_no_setting_and_adds_no_command() -> None:
    """The webhooks feature's settings and its ``crdt-server webhooks`` command exist only
    while the feature is in the list."""
    without = tuple(f for f in FEATURES if f.name != "webhooks")
    env = {"CRDT_SERVER_WEBHOOK_TIMEOUT_SECONDS": "3"}

    def timeout(features: tuple[Feature, ...]) -> float:
        settings = Settings.from_env(env, fragments=fragments_of(features))
        return settings.fragment(WebhookSettings).webhook_timeout_seconds

    assert timeout(FEATURES) == 3
    assert timeout(without) == WebhookSettings().webhook_timeout_seconds
    assert "CRDT_SERVER_WEBHOOK_TIMEOUT_SECONDS" in variables(fragments_of(FEATURES))
    assert not any("WEBHOOK" in name for name in variables(fragments_of(without)))

    generator = reference_generator()
    assert "CRDT_SERVER_WEBHOOK_RETRY_SCHEDULE" in generator.settings_page(FEATURES)
    page = generator.settings_page(without)
    assert "WEBHOOK" not in page and "## Feature `webhooks`" not in page
    assert "## Feature `versions`" in page

    def commands(features: tuple[Feature, ...]) -> set[str]:
        parser = cli_parser(features)
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return set(sub.choices)

    assert "webhooks" in commands(FEATURES)
    assert commands(without) == commands(FEATURES) - {"webhooks"}
    with pytest.raises(SystemExit):
        cli_parser(without).parse_args(["webhooks", "list"])
