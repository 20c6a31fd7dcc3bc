"""The data subcommands of ``crdt-server``: backup, restore, export, import, check, compact,
quarantine, clients.

Every one reads the same settings as ``serve`` (environment, ``--data-dir``,
``--database-url``), so it finds the store a server started the same way uses. Exit
status: 0 done, 1 ``check`` found damage, 2 refused (one line on stderr, see
:class:`ToolError`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from crdt_server.core.adoption import (
    ADOPTIONS_SCHEMA,
    DEFAULT_SECONDS,
    MAX_SECONDS,
    Window,
    open_window,
)
from crdt_server.core.quarantine import lift, listed
from crdt_server.names import CORE_EVENT_NAMESPACES, valid_wedding_id
from crdt_server.settings import Settings
from crdt_server.storage import PostgresTimeouts, Schema, Store, StoreError, store_for
from crdt_server.storage.gateway import Gateway
from crdt_server.tools.backup import (
    BackupError,
    backup_sqlite,
    private_modes,
    repair_modes,
    restore_sqlite,
)
from crdt_server.tools.check import (
    DocumentReport,
    check_sqlite_file,
    check_store,
    print_reports,
)
from crdt_server.tools.compact import compact_store
from crdt_server.tools.export import (
    EventTables,
    ExportError,
    Section,
    export_wedding,
    import_wedding,
    parse_export,
)
from crdt_server.tools.repair import repair_store
from crdt_server.tools.schema import (
    foreign_objects,
    install_schemas,
    object_problems,
    refuse_unreadable_versions,
    server_objects,
    version_problems,
)
from crdt_server.tools.wedding_day import (
    ON_WEDDING_DAY,
    is_their_day,
    timeline_is_today,
    weddings_on_their_day,
)

__all__ = [
    "COMMANDS",
    "ToolError",
    "add_commands",
    "open_store",
    "run",
    "settings_for",
    "store_options",
    "wedding_id",
    "with_store",
]

COMMANDS = (
    "backup",
    "restore",
    "export",
    "import",
    "check",
    "compact",
    "quarantine",
    "repair",
    "clients",
)
T = TypeVar("T")


class ToolError(Exception):
    """A data command refused or failed: one line for stderr, exit status 2."""


def store_options(parser: argparse.ArgumentParser) -> None:
    """``--data-dir`` and ``--database-url``: the store a server started the same way uses
    (the data commands and the features' offline commands take them)."""
    parser.add_argument("--data-dir", type=Path, help="data directory (default: as serve)")
    parser.add_argument(
        "--database-url", help="PostgreSQL store (default: CRDT_SERVER_DATABASE_URL, else SQLite)"
    )


def wedding_id(value: str) -> str:
    """argparse type: a valid wedding id, else a one-line usage error."""
    if not valid_wedding_id(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a wedding id (1 to 64 of A-Z a-z 0-9 _ -, not starting with _ -)"
        )
    return value


def _on_wedding_day(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        ON_WEDDING_DAY,
        dest="on_wedding_day",
        action="store_true",
        help="run even on the wedding's day (Saturday mode refuses it without this)",
    )


def add_commands(sub: Any) -> None:
    """Add the data subcommands to ``crdt-server``'s subparsers."""
    backup = sub.add_parser("backup", help="copy the SQLite store to FILE, online")
    backup.add_argument("file", type=Path, help="new backup file")
    store_options(backup)

    restore = sub.add_parser("restore", help="replace the SQLite store by a backup FILE")
    restore.add_argument("file", type=Path, help="backup file made by crdt-server backup")
    restore.add_argument(
        "--force", action="store_true", help="replace a store that holds documents"
    )
    _on_wedding_day(restore)
    store_options(restore)

    export = sub.add_parser("export", help="one wedding as a JSON export (stdout by default)")
    export.add_argument("--wedding", required=True, type=wedding_id, help="wedding id")
    export.add_argument("--out", type=Path, help="write to this new file instead of stdout")
    store_options(export)

    imp = sub.add_parser("import", help="store a wedding from a JSON export FILE ('-': stdin)")
    imp.add_argument("file", help="export file made by crdt-server export or the HTTP route")
    imp.add_argument("--as", dest="as_wedding", type=wedding_id, help="store it under this id")
    _on_wedding_day(imp)
    store_options(imp)

    check = sub.add_parser("check", help="verify every stored document; exit 1 on damage")
    check.add_argument("--wedding", type=wedding_id, help="only this wedding")
    check.add_argument("--json", action="store_true", help="one JSON report on stdout")
    store_options(check)

    compact = sub.add_parser("compact", help="fold stored logs into one snapshot each")
    compact.add_argument("--wedding", type=wedding_id, help="only this wedding")
    _on_wedding_day(compact)
    store_options(compact)

    quarantine = sub.add_parser(
        "quarantine", help="Yjs clients refused because their update stalled the server"
    )
    actions = quarantine.add_subparsers(dest="action", required=True)
    shown = actions.add_parser("list", help="every quarantined client, one line each")
    store_options(shown)
    lifted = actions.add_parser(
        "lift",
        help="accept a quarantined client's updates again (running servers: within a second)",
    )
    lifted.add_argument("--wedding", type=wedding_id, help="only in this wedding")
    lifted.add_argument("--doc", help="only in this document (timeline, budget, guests...)")
    lifted.add_argument("--client", type=int, help="only this Yjs client id")
    lifted.add_argument(
        "--all", action="store_true", help="every quarantined client (nothing else given)"
    )
    store_options(lifted)

    clients = sub.add_parser("clients", help="the owners of the Yjs client ids")
    adopt = clients.add_subparsers(dest="action", required=True).add_parser(
        "adopt", help="after a restore or failover, credit re-sent edits to their owners"
    )
    adopt.add_argument("--since", required=True, type=int, help="the restored store's last seq")
    adopt.add_argument("--wedding", type=wedding_id, help="only this wedding (default: all)")
    hours = (
        f"window's length (default {DEFAULT_SECONDS / 3600:.0f}, at most {MAX_SECONDS / 3600:.0f})"
    )
    adopt.add_argument("--hours", type=float, default=DEFAULT_SECONDS / 3600, help=hours)
    store_options(adopt)

    repair = sub.add_parser(
        "repair", help="delete a wedding's stored content that does not fit its parent"
    )
    repair.add_argument("--wedding", required=True, type=wedding_id, help="wedding id")
    store_options(repair)


def settings_for(args: argparse.Namespace, fragments: Sequence[type[Any]] = ()) -> Settings:
    """The settings ``serve`` would use (with the features' ``fragments``), with this
    command's store options (:func:`store_options`), if it has them, on top."""
    return Settings.from_env(
        fragments=fragments,
        data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None),
    )


def open_store(settings: Settings) -> Store:
    """The store ``serve`` opens for these settings (``crdt_server.app.default_store``)."""
    if not settings.database_url and not settings.sqlite_path.is_file():
        raise ToolError(f"no store at {settings.sqlite_path} (wrong --data-dir?)")
    return store_for(
        settings.database_url,
        settings.sqlite_path,
        busy_timeout=settings.sqlite_busy_timeout_seconds,
        synchronous="normal" if settings.sqlite_synchronous == "normal" else "full",
        read_connections=settings.sqlite_read_connections,
        commits=settings.sqlite_commits_on,
        postgres_timeouts=PostgresTimeouts.for_commands(settings.database_lock_timeout_seconds),
    )


async def with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """``work`` on the store ``serve`` would open for ``settings``, opened and closed."""
    store = open_store(settings)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def refuse_unreadable_store(
    settings: Settings, schemas: Sequence[Schema], *, missing_ok: bool = False
) -> None:
    """Open the store ``serve`` would open for ``settings``, and refuse (:class:`ToolError`,
    one line) one this release cannot take: written by a newer release, or with a schema
    version that is not one (see :func:`refuse_unreadable_versions`). Before a server
    starts or a command works, so that the refusal is one line, not a traceback from deep
    inside either. ``missing_ok``: no SQLite file yet is fine (it will be created)."""
    if missing_ok and not settings.database_url and not settings.sqlite_path.is_file():
        return
    try:
        asyncio.run(with_store(settings, lambda store: refuse_unreadable_versions(store, schemas)))
    except StoreError as exc:
        raise ToolError(str(exc)) from exc


def run(
    args: argparse.Namespace,
    out: TextIO | None = None,
    sections: Sequence[Section] = (),
    schemas: Sequence[Schema] = (),
    namespaces: Sequence[str] = CORE_EVENT_NAMESPACES,
    events: EventTables | None = None,
) -> int:
    """Run one data command, reporting on ``out`` (default: stdout); raises
    :class:`ToolError` (or SettingsError) when refused. ``sections`` are the features'
    parts of a wedding that export and import carry (``crdt_server.cli`` passes them: the
    tools do not import features); ``schemas`` the features' tables, which ``restore`` and
    ``check`` expect beside the store's own; ``namespaces`` the event types an import may
    hold (the features' and the core's); ``events`` the events feature's part of export and
    import (its events, and how an import stores them)."""
    settings = settings_for(args)
    try:
        if args.command in ("export", "import", "check", "compact", "quarantine", "clients"):
            refuse_unreadable_store(settings, schemas, missing_ok=args.command == "import")
        if args.command == "compact":
            _refuse_on_wedding_day(args, settings)
        if args.command == "restore":
            return _restore(args, settings, out or sys.stdout, schemas)
        if args.command == "check":
            return _check(args, settings, out or sys.stdout, schemas)
        if args.command == "export":
            return _export(args, settings, out or sys.stdout, sections, events)
        if args.command == "import":
            return _import(args, settings, out or sys.stdout, sections, namespaces, events)
        command: Callable[[argparse.Namespace, Settings, TextIO], int] = _HANDLERS[args.command]
        return command(args, settings, out or sys.stdout)
    except (BackupError, StoreError) as exc:
        raise ToolError(str(exc)) from exc
    except ExportError as exc:
        raise ToolError(f"export file, {exc}") from exc


def _refuse_on_wedding_day(args: argparse.Namespace, settings: Settings) -> None:
    """Saturday mode (:mod:`crdt_server.tools.wedding_day`): refuse, without
    ``--on-wedding-day``, an import or compaction of one wedding on its day, and a restore
    or compaction of the whole store while any wedding in it has its day (naming them)."""
    if getattr(args, "on_wedding_day", False):
        return
    if not settings.database_url and not settings.sqlite_path.is_file():
        return  # nothing stored: no wedding has its day here
    one = getattr(args, "wedding", None)

    async def today(store: Store) -> list[str]:
        if one is not None:
            return [one] if await is_their_day(store, one) else []
        return await weddings_on_their_day(store)

    found = asyncio.run(with_store(settings, today))
    if found:
        _refuse(args.command, found, one)


def _refuse(command: str, found: Sequence[str], one: str | None) -> None:
    what = f"wedding {one}" if one is not None else "the whole store"
    raise ToolError(
        f"Saturday mode: today is the wedding day of {', '.join(found)}; "
        f"{command} of {what} refused (add {ON_WEDDING_DAY} to run it anyway)"
    )


def _sqlite_only(settings: Settings, command: str) -> None:
    if settings.database_url:
        raise ToolError(
            f"{command} copies the embedded SQLite store; this one is PostgreSQL "
            "(CRDT_SERVER_DATABASE_URL): use pg_dump / pg_restore (see deploy/README.md)"
        )


def _backup(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    _sqlite_only(settings, "backup")
    summary = backup_sqlite(settings.sqlite_path, args.file)
    print(
        f"backed up {settings.sqlite_path} to {args.file}: {summary.documents} documents, "
        f"{summary.rows} rows, {summary.bytes} bytes",
        file=out,
    )
    return 0


def _restore(
    args: argparse.Namespace, settings: Settings, out: TextIO, schemas: Sequence[Schema]
) -> int:
    _sqlite_only(settings, "restore")
    _refuse_on_wedding_day(args, settings)
    expected = server_objects(schemas)

    def versions(conn: sqlite3.Connection) -> list[str]:
        return version_problems(conn, expected)

    def foreign(conn: sqlite3.Connection) -> list[str]:
        return foreign_objects(conn, expected)

    def migrate(path: Path) -> None:
        # What a server starting on the file would do, before it is the store: a backup
        # from an older release is served by this one as soon as it is in place.
        try:
            asyncio.run(install_schemas(path, schemas))
        except StoreError as exc:
            raise BackupError(
                f"{args.file} cannot be brought to this release's schemas: {exc}"
            ) from exc

    summary = restore_sqlite(
        args.file,
        settings.sqlite_path,
        force=args.force,
        foreign=foreign,
        versions=versions,
        migrate=migrate,
    )
    with sqlite3.connect(settings.sqlite_path) as conn:
        last = conn.execute("SELECT MAX(seq) FROM history").fetchone()[0] or 0
    print(
        f"restored {args.file} into {settings.sqlite_path}: {summary.documents} documents, "
        f"{summary.rows} rows, migrated to this release's schemas; its last update is seq"
        f" {last} (crdt-server clients adopt --since {last}: the clients' re-sent edits"
        " credited to their owners)",
        file=out,
    )
    return 0


def _export(
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    sections: Sequence[Section],
    events: EventTables | None,
) -> int:
    if args.out is not None and args.out.exists():
        raise ToolError(f"{args.out} already exists; choose a new file name")
    found = asyncio.run(
        with_store(settings, lambda s: export_wedding(s, args.wedding, sections, events=events))
    )
    if found is None:
        raise ToolError(f"wedding {args.wedding!r} has no stored document")
    # ASCII with \u escapes: the same JSON whatever encoding the terminal or pipe has.
    text = json.dumps(found.to_json(), indent=1)
    if args.out is None:
        print(text, file=out)
        return 0
    # 0600: an export holds the wedding's personal data.
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    print(f"exported wedding {args.wedding} to {args.out}", file=sys.stderr)
    return 0


def _import(
    args: argparse.Namespace,
    settings: Settings,
    out: TextIO,
    sections: Sequence[Section],
    namespaces: Sequence[str],
    events: EventTables | None,
) -> int:
    try:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            text = Path(args.file).read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as exc:
        raise ToolError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise ToolError(f"{args.file} is not JSON: {exc}") from exc
    export = parse_export(data, sections, namespaces)
    target = args.as_wedding or export.wedding
    timeline = export.documents.get("timeline")
    if (
        not getattr(args, "on_wedding_day", False)
        and timeline is not None
        and timeline_is_today(timeline.update)
    ):
        _refuse("import", [target], target)
    if not settings.database_url:
        settings.sqlite_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        store = store_for(
            None, settings.sqlite_path, busy_timeout=settings.sqlite_busy_timeout_seconds
        )
    else:
        store = open_store(settings)

    async def work() -> list[str]:
        await store.open()
        try:
            return await import_wedding(store, export, args.as_wedding, sections, events=events)
        finally:
            await store.close()

    # The store, its -wal and -shm hold personal data: 0600 as serve makes them.
    with private_modes():
        names = asyncio.run(work())
    if not settings.database_url:
        repair_modes(settings.sqlite_path.parent)
    entries = len(export.history)
    print(
        f"imported wedding {args.as_wedding or export.wedding}: {len(names)} documents, "
        f"{entries} history entries",
        file=out,
    )
    return 0


def _check(
    args: argparse.Namespace, settings: Settings, out: TextIO, schemas: Sequence[Schema]
) -> int:
    prefix = f"{args.wedding}/" if args.wedding else ""
    store_problems: list[str] = []
    logless: dict[str, int] = {}
    if not settings.database_url:
        if not settings.sqlite_path.is_file():
            raise ToolError(f"no store at {settings.sqlite_path} (wrong --data-dir?)")
        try:
            found = check_sqlite_file(settings.sqlite_path, prefix)
        except sqlite3.Error as exc:
            raise ToolError(f"cannot check {settings.sqlite_path}: {exc}") from exc
        store_problems, logless = found.problems, found.logless
        store_problems += object_problems(settings.sqlite_path, schemas)
    try:
        reports = asyncio.run(with_store(settings, lambda s: check_store(s, prefix)))
    except StoreError as exc:
        if not store_problems:
            raise
        # The file is damaged where the documents are read: say so, as damage (exit 1).
        store_problems.append(f"the documents cannot be read: {exc}")
        reports = []
    for name, entries in logless.items():
        lost = DocumentReport(name, history=entries)
        lost.problems.append(f"{entries} history entries but no row in its log")
        reports.append(lost)
    reports.sort(key=lambda r: r.name)
    if args.wedding and not reports and not store_problems:
        raise ToolError(f"wedding {args.wedding!r} has no stored document")
    print_reports(reports, store_problems, settings.sqlite_path, out, as_json=args.json)
    damaged = any(r.problems for r in reports)
    return 1 if damaged or store_problems else 0


def _compact(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    prefix = f"{args.wedding}/" if args.wedding else ""
    results = asyncio.run(with_store(settings, lambda s: compact_store(s, prefix)))
    if args.wedding and not results:
        raise ToolError(f"wedding {args.wedding!r} has no stored document")
    for r in results:
        if r.skipped:
            print(f"kept      {r.name}: {r.rows_before} rows ({r.skipped})", file=out)
        else:
            print(
                f"compacted {r.name}: {r.rows_before} rows, {r.bytes_before} bytes -> "
                f"1 row, {r.bytes_after} bytes",
                file=out,
            )
    done = sum(1 for r in results if not r.skipped)
    print(f"{done} of {len(results)} documents compacted", file=out)
    return 0


def _quarantine(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    if args.action == "list":
        for row in asyncio.run(with_store(settings, listed)):
            print(f"{row.wedding}/{row.doc} client {row.client} sub {row.sub!r}", file=out)
        return 0
    chosen = (args.wedding, args.doc, args.client)
    if args.all == any(value is not None for value in chosen):
        raise ToolError("give --wedding, --doc or --client (or --all for every client)")
    count = asyncio.run(with_store(settings, lambda store: lift(store, *chosen)))
    print(f"lifted the quarantine of {count} client(s)", file=out)
    return 0


def _clients(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    async def work(store: Store) -> Window:
        await store.install(ADOPTIONS_SCHEMA)
        return await open_window(
            Gateway.of(store), args.wedding or "", args.since, args.hours * 3600
        )

    try:
        window = asyncio.run(with_store(settings, work))
    except ValueError as exc:
        raise ToolError(str(exc)) from exc
    until = datetime.fromtimestamp(window.until, UTC).isoformat(timespec="seconds")
    where = f"wedding {window.wedding}" if window.wedding else "every wedding"
    print(f"adoption window open for {where} since seq {window.since} until {until}", file=out)
    return 0


def _repair(args: argparse.Namespace, settings: Settings, out: TextIO) -> int:
    repairs = asyncio.run(with_store(settings, lambda s: repair_store(s, f"{args.wedding}/")))
    if not repairs:
        raise ToolError(f"wedding {args.wedding!r} has no stored document")
    for r in repairs:
        if r.deleted:
            ids = ", ".join(f"{client}#{clock}" for (client, clock), _ in r.deleted)
            print(f"repaired  {r.name}: deleted {len(r.deleted)} items ({ids})", file=out)
        else:
            print(f"ok        {r.name}: nothing to repair", file=out)
    done = sum(1 for r in repairs if r.deleted)
    print(f"{done} of {len(repairs)} documents repaired", file=out)
    return 0


_HANDLERS: dict[str, Callable[[argparse.Namespace, Settings, TextIO], int]] = {
    "backup": _backup,
    "compact": _compact,
    "quarantine": _quarantine,
    "repair": _repair,
    "clients": _clients,
}
