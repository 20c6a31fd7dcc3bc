"""Saturday mode in the data commands: on a wedding's day (its stored profile's date in its
zone, by the server's clock), ``import``, ``compact --wedding``, and ``compact`` and
``restore`` of the whole store refuse without ``--on-wedding-day``, naming the weddings."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc

from crdt_server import clock
from crdt_server.app import CORE_SCHEMAS, EVENT_TABLES, FEATURES
from crdt_server.documents import apply_operation, seed
from crdt_server.features import event_namespaces_of, schemas_of
from crdt_server.storage import NewUpdate, Schema, SqliteStore
from crdt_server.tools import commands as data_commands
from crdt_server.tools.commands import ToolError
from crdt_server.tools.export import export_wedding

pytestmark = pytest.mark.timeout(60)

NAMESPACES = event_namespaces_of(FEATURES)
# 23:30 UTC on 12 June is already 13 June in Lisbon's summer time (UTC+1).
LATE_EVENING = datetime(2026, 6, 12, 23, 30, tzinfo=UTC)


def _schemas() -> list[Schema]:
    return [*CORE_SCHEMAS, *schemas_of(FEATURES)]


def _timeline(wedding: str, day: str, zone: str | None) -> bytes:
    doc: Doc[Any] = Doc()
    seed(doc, "timeline", wedding)
    profile: dict[str, Any] = {"op": "set_profile", "date": day}
    if zone is not None:
        profile["time_zone"] = zone
    apply_operation(doc, "timeline", profile)
    return doc.get_update()


def _store(data: Path, weddings: dict[str, tuple[str, str | None]]) -> None:
    data.mkdir(parents=True, exist_ok=True)

    async def write() -> None:
        store = SqliteStore(data / "crdt.sqlite3")
        await store.open()
        try:
            for wedding, (day, zone) in weddings.items():
                update = _timeline(wedding, day, zone)
                await store.append([NewUpdate(f"{wedding}/timeline", update, "ws:ada")])
        finally:
            await store.close()

    asyncio.run(write())


def _run(data: Path, **given: Any) -> str:
    out = io.StringIO()
    args = argparse.Namespace(data_dir=data, database_url=None, **given)
    code = data_commands.run(args, out, schemas=_schemas(), namespaces=NAMESPACES)
    assert code == 0
    return out.getvalue()


def test_compact_refuses_on_the_day_in_the_weddings_own_zone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _store(data, {"lisbon": ("2026-06-13", "Europe/Lisbon"), "utc": ("2026-06-13", None)})
    with clock.use(clock.FakeClock(LATE_EVENING)):
        # Lisbon's day has begun; the wedding without a zone (UTC) is still tomorrow.
        with pytest.raises(ToolError) as whole:
            _run(data, command="compact", wedding=None, on_wedding_day=False)
        assert "lisbon" in str(whole.value) and "utc" not in str(whole.value)
        assert "--on-wedding-day" in str(whole.value)
        with pytest.raises(ToolError):
            _run(data, command="compact", wedding="lisbon", on_wedding_day=False)
        # The other wedding is not on its day: compacting it alone goes ahead.
        assert "compacted" in _run(data, command="compact", wedding="utc", on_wedding_day=False)
        assert "compacted" in _run(data, command="compact", wedding="lisbon", on_wedding_day=True)


def test_a_wedding_on_another_day_is_not_protected(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _store(data, {"later": ("2026-09-01", "Europe/Lisbon")})
    with clock.use(clock.FakeClock(LATE_EVENING)):
        said = _run(data, command="compact", wedding=None, on_wedding_day=False)
        assert "0 of 1 documents compacted" in said  # ran: one row already


def test_restore_names_the_weddings_whose_day_it_is(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _store(data, {"lisbon": ("2026-06-13", "Europe/Lisbon")})
    backup = tmp_path / "backup.sqlite3"
    backup.write_bytes((data / "crdt.sqlite3").read_bytes())
    with clock.use(clock.FakeClock(LATE_EVENING)):
        with pytest.raises(ToolError) as refused:
            _run(data, command="restore", file=backup, force=True, on_wedding_day=False)
        assert "lisbon" in str(refused.value)
        assert "restored" in _run(
            data, command="restore", file=backup, force=True, on_wedding_day=True
        )


def test_import_of_a_wedding_on_its_day_refuses_without_the_flag(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _store(source, {"lisbon": ("2026-06-13", "Europe/Lisbon")})

    async def exported() -> dict[str, Any]:
        store = SqliteStore(source / "crdt.sqlite3")
        await store.open()
        try:
            found = await export_wedding(store, "lisbon", events=EVENT_TABLES)
            assert found is not None
            return found.to_json()
        finally:
            await store.close()

    file = tmp_path / "lisbon.json"
    file.write_text(json.dumps(asyncio.run(exported())))
    data = tmp_path / "data"
    with clock.use(clock.FakeClock(LATE_EVENING)):
        with pytest.raises(ToolError) as refused:
            _run(data, command="import", file=str(file), as_wedding="w9", on_wedding_day=False)
        assert "w9" in str(refused.value)
        assert not (data / "crdt.sqlite3").exists()  # nothing stored
        said = _run(data, command="import", file=str(file), as_wedding="w9", on_wedding_day=True)
        assert "imported wedding w9" in said
    # The day after, no flag is needed.
    with clock.use(clock.FakeClock(datetime(2026, 6, 14, 12, tzinfo=UTC))):
        said = _run(data, command="import", file=str(file), as_wedding="w10", on_wedding_day=False)
        assert "imported wedding w10" in said
