"""Opening, creating and closing a project file.

One project is one SQLite file. It is opened with WAL (readers never wait for the writer),
synchronous=FULL (a committed edit survives a power cut), foreign keys on, and `BEGIN IMMEDIATE` for
write transactions, so two writers queue for the lock at BEGIN instead of failing halfway.
Before anything is written, the file is checked: that it is SQLite, that it is ours, that it is not
damaged and not from a newer app; an older schema is backed up, then migrated. Last, jobs a crash
left running are recovered by the queue's own rule (`projects.queue.recover_interrupted_jobs`, given a
write session): this module uses the queue, the queue never imports this module.

Every SQLite failure about the file or its disk leaves here as a ProjectError in words
(`projects.storage_errors`): busy, read-only, disk full, damaged; never SQL text. A writer that holds
the lock longer than `busy_timeout` makes `write` fail with ProjectBusyError (callers that must not give
up, like storing a finished render, retry it).

A project whose file or folder cannot be written opens read-only (`mode=ro`, and `immutable=1` when no
WAL is beside it, so SQLite creates no -wal/-shm files it could not remove): reading works, `write`
raises ProjectReadOnlyError, no lock file is made and no crashed job is recovered.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool

from common.atomic_files import PendingFile, atomic_path
from projects import schema
from projects.errors import (
    CorruptProjectError,
    NotAProjectError,
    ProjectExistsError,
    ProjectNotFoundError,
    ProjectReadOnlyError,
    ProjectTooNewError,
)
from projects.locking import ProjectLock
from projects.models import ProjectSettings
from projects.queue import recover_interrupted_jobs
from projects.storage_errors import storage_error

log = logging.getLogger(__name__)

PROJECT_SUFFIX = ".instproj"
# PRAGMA application_id marks the file as ours: "ISTD".
APPLICATION_ID = 0x49535444
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class OpenReport:
    """What happened while opening: a migration (and its backup), jobs recovered from a crash."""

    migrated_from: str | None = None
    backup: Path | None = None
    requeued_jobs: tuple[int, ...] = ()
    failed_jobs: tuple[int, ...] = ()

    @property
    def had_unclean_exit(self) -> bool:
        return bool(self.requeued_jobs or self.failed_jobs)


class Project:
    """An open project file. Thread-safe: each thread makes its own sessions through `read`/`write`.

    ORM objects belong to the session that loaded them and must not cross threads.
    """

    def __init__(
        self, path: Path, engine: Engine, lock: ProjectLock | None, report: OpenReport, *, read_only: bool = False
    ) -> None:
        self.path = path
        self.engine = engine
        self.report = report
        self.read_only = read_only
        self._lock = lock
        self._open = True
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], name: str | None = None) -> Project:
        """Create a new, empty project at `path` (which must not exist) and open it."""
        path = Path(path).absolute()
        if path.exists():
            raise ProjectExistsError(path)
        if not path.parent.is_dir():
            raise ProjectNotFoundError(path.parent)
        # Build it under a temporary name, so a failure leaves no half-made project behind.
        pending = PendingFile(path)
        tmp = pending.path
        try:
            with _translated(path), closing(_raw_connect(tmp)) as conn:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute("PRAGMA journal_mode = WAL")
            migration_engine = _migration_engine(tmp)
            try:
                with _translated(path), migration_engine.begin() as connection:
                    schema.upgrade(connection)
                with _translated(path), Session(migration_engine) as session, session.begin():
                    session.add(ProjectSettings(id=1, name=name or path.stem))
            finally:
                migration_engine.dispose()
            with _translated(path), closing(_raw_connect(tmp)) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if path.exists():
                raise ProjectExistsError(path)
            pending.commit()
        finally:
            pending.discard()
            for leftover in (Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                leftover.unlink(missing_ok=True)
        return cls.open(path)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, read_only: bool | None = None, busy_timeout: float = BUSY_TIMEOUT_S
    ) -> Project:
        """Open an existing project, after checking it and migrating it if it is older.

        `read_only`: None opens it read-only when the file or its folder cannot be written; True always.
        `busy_timeout`: how long a write waits for another program's write lock before ProjectBusyError."""
        path = Path(path).absolute()
        _check_header(path)
        if read_only is None:
            read_only = not _writable(path)
        with _translated(path):
            if read_only:
                return cls._open_read_only(path, busy_timeout)
            return cls._open_writable(path, busy_timeout)

    @classmethod
    def _open_read_only(cls, path: Path, busy_timeout: float) -> Project:
        revision = _inspect(path, read_only=True)
        if revision != schema.head_revision():
            raise ProjectReadOnlyError(
                path, f"it is from an older version (schema {revision}) and must be upgraded; make it writable first"
            )
        engine = _make_engine(path, foreign_keys=True, busy_timeout=busy_timeout, read_only=True)
        return cls(path, engine, None, OpenReport(), read_only=True)

    @classmethod
    def _open_writable(cls, path: Path, busy_timeout: float) -> Project:
        lock = ProjectLock.acquire(path)
        try:
            revision = _inspect(path)
            migrated_from, backup = None, None
            if revision != schema.head_revision():
                backup = _backup(path, revision)
                migration_engine = _migration_engine(path)
                try:
                    with migration_engine.begin() as connection:
                        schema.upgrade(connection)
                        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if violations:
                            raise CorruptProjectError(path, f"foreign key violations after upgrade: {violations[:3]}")
                finally:
                    migration_engine.dispose()
                migrated_from = revision
                log.info("upgraded %s from schema %s (backup at %s)", path, revision, backup)
            engine = _make_engine(path, foreign_keys=True, busy_timeout=busy_timeout)
            project = cls(path, engine, lock, OpenReport(migrated_from=migrated_from, backup=backup))
            with project.write() as session:
                requeued, failed = recover_interrupted_jobs(session)
            project.report = OpenReport(migrated_from, backup, requeued, failed)
            return project
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        if self._open:
            self._open = False
            self.engine.dispose()
            if self._lock is not None:
                self._lock.release()

    @property
    def is_open(self) -> bool:
        return self._open

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- sessions ----------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only session: a snapshot that sees nothing written after it began."""
        with _translated(self.path), self._sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def write(self, *, wait: float | None = None) -> Iterator[Session]:
        """A short write transaction (BEGIN IMMEDIATE), committed on success, rolled back on error.

        It waits up to `wait` seconds (default: the project's busy timeout) for another program's write
        lock, then raises ProjectBusyError; a read-only project raises ProjectReadOnlyError at once."""
        if self.read_only:
            raise ProjectReadOnlyError(self.path)
        options: dict[str, Any] = {"sqlite_begin": "IMMEDIATE"}
        if wait is not None:
            options["busy_timeout"] = wait
        with _translated(self.path), self._sessions() as session:
            session.connection(execution_options=options)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise


# --- opening checks ---------------------------------------------------------------------------


def _check_header(path: Path) -> None:
    if not path.exists():
        raise ProjectNotFoundError(path)
    if not path.is_file():
        raise NotAProjectError(path, "it is a folder")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise NotAProjectError(path, f"cannot be read: {exc.strerror}") from exc
    if header != SQLITE_HEADER:
        raise NotAProjectError(path, "not an SQLite database")


def _writable(path: Path) -> bool:
    """Whether we may write the file and make files beside it (the WAL, the shared memory, the lock)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _raw_connect(
    path: Path, *, must_exist: bool = False, read_only: bool = False, timeout: float = BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    if read_only:
        target = f"{path.as_uri()}?mode=ro"
        # Immutable: no locks and no -wal/-shm files, which SQLite could create but not remove. Safe, since
        # nobody can write a file we cannot write; unless a WAL with content is beside it: then read that too.
        if _size(Path(f"{path}-wal")) == 0:
            target += "&immutable=1"
    else:
        target = f"{path.as_uri()}?mode=rw" if must_exist else path.as_uri()
    conn = sqlite3.connect(target, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
    # A hostile file must not run SQL functions from its schema (triggers, views) on open.
    conn.execute("PRAGMA trusted_schema = OFF")
    if read_only:
        conn.execute("PRAGMA query_only = ON")
    return conn


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


@contextmanager
def _translated(path: Path, *, unknown_is_damage: bool = False) -> Iterator[None]:
    """Raise SQLite's errors about the file or its disk as the ProjectError they mean (never SQL text)."""
    try:
        yield
    except (sqlite3.Error, DBAPIError) as exc:
        error = storage_error(path, exc, unknown_is_damage=unknown_is_damage)
        if error is None:
            raise
        raise error from exc


def _inspect(path: Path, *, read_only: bool = False) -> str:
    """Return the file's schema revision, or raise if it is not a healthy project we can open."""
    with _translated(path, unknown_is_damage=True):
        conn = _raw_connect(path, must_exist=True, read_only=read_only)
    try:
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        if app_id != APPLICATION_ID:
            raise NotAProjectError(path, "an SQLite database of another program")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise CorruptProjectError(path, "; ".join(problems[:3]))
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error as exc:
            raise CorruptProjectError(path, "it has no schema version") from exc
    except sqlite3.DatabaseError as exc:
        raise storage_error(path, exc, unknown_is_damage=True) or CorruptProjectError(path, str(exc)) from exc
    finally:
        conn.close()
    if row is None:
        raise CorruptProjectError(path, "it has no schema version")
    revision = str(row[0])
    if revision not in schema.known_revisions():
        raise ProjectTooNewError(path, revision)
    return revision


def _backup(path: Path, revision: str) -> Path:
    """Copy the file with SQLite's online backup before a migration touches it."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.stem}.schema-{revision}-{stamp}.backup{path.suffix}")
    source = _raw_connect(path, must_exist=True)
    try:
        # Written under a temporary name, so a backup that is there is a whole one.
        with atomic_path(target) as tmp:
            destination = sqlite3.connect(tmp)
            try:
                source.backup(destination)
            finally:
                destination.close()
    finally:
        source.close()
    return target


# --- engines ----------------------------------------------------------------------------------


def _make_engine(
    path: Path, *, foreign_keys: bool, busy_timeout: float = BUSY_TIMEOUT_S, read_only: bool = False
) -> Engine:
    engine = create_engine(
        "sqlite://",
        creator=lambda: _raw_connect(path, must_exist=True, read_only=read_only, timeout=busy_timeout),
        poolclass=QueuePool,
        pool_size=4,
        max_overflow=4,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        if not read_only:  # a read-only file keeps the journal mode it has
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # pysqlite's own transaction handling is off (isolation_level=None); we say BEGIN ourselves.
        options = connection.get_execution_options()
        # How long this transaction waits for another writer; set on every BEGIN, as pooled connections are shared.
        wait_ms = int(1000 * options.get("busy_timeout", busy_timeout))
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {wait_ms}")
        connection.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")

    return engine


def _migration_engine(path: Path) -> Engine:
    # Foreign keys stay off while migrating: batch mode drops and recreates tables, and with them on,
    # dropping a parent table would cascade-delete its children.
    return _make_engine(path, foreign_keys=False)
