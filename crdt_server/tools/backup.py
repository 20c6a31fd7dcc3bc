"""``crdt-server backup`` and ``restore`` for the embedded SQLite store.

A backup is one SQLite file, copied with SQLite's online backup API in one step: one read
transaction, so the copy is the database as of one commit even while a server keeps
writing (in WAL mode readers never block the writer). It is checked with
``PRAGMA integrity_check`` before it takes its final name, written 0600 (it holds every
wedding's personal data) and fsynced. The signing secret (``auth_secret``) is not in it.

A restore copies a backup into a data directory the same way (a ``-wal`` file left in the
target is folded in, never replayed over the restored pages), and refuses to replace a
store that holds any row unless forced. Stop the servers using that store first: a running
server keeps its rooms in memory.

PostgreSQL stores are backed up with ``pg_dump`` (see ``deploy/README.md``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PRIVATE_FILES",
    "BackupError",
    "BackupSummary",
    "backup_sqlite",
    "private_modes",
    "repair_modes",
    "restore_sqlite",
    "summarize",
]

PRIVATE_FILES = ("crdt.sqlite3", "crdt.sqlite3-wal", "crdt.sqlite3-shm", "auth_secret")
"""Files of a data directory that hold personal data or the signing secret: 0600."""


class BackupError(Exception):
    """A backup or restore was refused or failed; nothing at the destination changed."""


@dataclass(frozen=True, slots=True)
class BackupSummary:
    documents: int
    rows: int
    bytes: int


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rwc'}"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open {path}: {exc}") from exc
    try:
        yield conn
    finally:
        conn.close()


def summarize(conn: sqlite3.Connection, where: Path) -> BackupSummary:
    """How many documents, rows and bytes a store file holds (it must be a store)."""
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if not {"updates", "history"} <= tables:
            raise BackupError(f"{where} is not a crdt-server store (no updates/history tables)")
        docs, rows, size = conn.execute(
            "SELECT COUNT(DISTINCT doc), COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM updates"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{where} is not a readable SQLite store: {exc}") from exc
    return BackupSummary(int(docs), int(rows), int(size))


def _verify(conn: sqlite3.Connection, where: Path) -> BackupSummary:
    try:
        verdict = [row[0] for row in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{where} is not a readable SQLite store: {exc}") from exc
    if verdict != ["ok"]:
        raise BackupError(f"{where} failed SQLite's integrity check: {'; '.join(verdict[:3])}")
    return summarize(conn, where)


@contextlib.contextmanager
def private_modes() -> Iterator[None]:
    """Files created meanwhile (a store, its ``-wal`` and ``-shm``) are the owner's alone
    (umask 077), whatever the caller's umask; it is put back afterwards."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def repair_modes(data_dir: Path) -> list[str]:
    """Make the data directory 0700 and its private files 0600 where they are not; what was
    changed, as ``name 0644 -> 0600`` (never their content)."""
    repaired: list[str] = []
    wanted = [(data_dir, 0o700), *((data_dir / name, 0o600) for name in PRIVATE_FILES)]
    for path, mode in wanted:
        try:
            current = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if current != mode:
            path.chmod(mode)
            shown = path.name if path != data_dir else "data directory"
            repaired.append(f"{shown} {current:04o} -> {mode:04o}")
    return repaired


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_sqlite(source: Path, target: Path) -> BackupSummary:
    """Copy the store ``source`` to a new file ``target``, consistently, while it is in use."""
    if not source.is_file():
        raise BackupError(f"{source} does not exist: no store to back up in this data directory")
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new file name")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        with _connect(source) as src, _connect(partial) as dst:
            summarize(src, source)
            src.backup(dst)  # pages=-1: the whole file under one read transaction
            # One self-contained file: no -wal beside it to lose when it is copied around.
            dst.execute("PRAGMA journal_mode = DELETE")
            summary = _verify(dst, partial)
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return summary


def _unlink_store(path: Path) -> None:
    """Remove a SQLite file and its ``-wal`` and ``-shm``, where they are."""
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        path.with_name(name).unlink(missing_ok=True)


def _refuse(backup: Path, why: str, lines: list[str]) -> None:
    if lines:
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise BackupError(f"{backup} {why}: {lines[0]}{more}")


def restore_sqlite(
    backup: Path,
    target: Path,
    *,
    force: bool = False,
    foreign: Callable[[sqlite3.Connection], list[str]] | None = None,
    versions: Callable[[sqlite3.Connection], list[str]] | None = None,
    migrate: Callable[[Path], None] | None = None,
) -> BackupSummary:
    """Replace the store ``target`` by the backup file ``backup``.

    Refuses, changing nothing, if ``backup`` is not an intact store, if ``versions`` finds
    schema versions this release cannot take (a newer release's file), if ``foreign`` finds
    objects in it the server would not have created (a trigger, a view, a table), or if
    ``target`` holds any row and ``force`` is false.

    ``migrate`` (raising :class:`BackupError`) brings a copy of the backup to this
    release's schemas, beside the target, before that copy replaces the store's content, so
    the store is never left half migrated. ``foreign`` then judges the migrated copy: a
    backup from an older release holds the objects that release made (a table since
    renamed), which its migrations turn into this release's; anything else is still there.
    """
    if not backup.is_file():
        raise BackupError(f"{backup} does not exist")
    with _connect(backup, read_only=True) as src:
        summary = _verify(src, backup)
        try:
            too_new = versions(src) if versions is not None else []
            strange = foreign(src) if foreign is not None else []
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{backup} is not a readable SQLite store: {exc}") from exc
    _refuse(backup, "cannot be restored by this release", too_new)
    if migrate is None:
        _refuse(backup, "is not a store this server made", strange)
    staged = target.with_name(target.name + ".restoring")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        source = backup
        if migrate is not None:
            _unlink_store(staged)
            os.close(os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            with _connect(backup, read_only=True) as src, _connect(staged) as dst:
                src.backup(dst)
            try:
                migrate(staged)
            except BackupError:
                # An object of its own may be what the migration tripped on: name it.
                _refuse(backup, "is not a store this server made", strange)
                raise
            with _connect(staged) as migrated:
                left = foreign(migrated) if foreign is not None else []
            _refuse(backup, "is not a store this server made", left)
            source = staged
        if target.exists():
            with _connect(target) as existing:
                held = summarize(existing, target) if not force else None
            if held is not None and held.rows:
                raise BackupError(
                    f"{target} holds {held.documents} documents ({held.rows} rows); "
                    "pass --force to replace them (stop the servers using it first)"
                )
        else:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with _connect(source, read_only=migrate is None) as src, _connect(target) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = WAL")  # what the server runs in
            dst.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            restored = _verify(dst, target)
    except sqlite3.Error as exc:
        raise BackupError(f"restore into {target} failed: {exc}") from exc
    except OSError as exc:
        raise BackupError(f"cannot write {target}: {exc.strerror or exc}") from exc
    finally:
        _unlink_store(staged)
    if restored != summary:
        raise BackupError(f"{target} does not match {backup} after the restore")
    return restored
