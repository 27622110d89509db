"""SQLite's failures, in the project's words: one place decides what a database error means for the user.

SQLite reports what went wrong as a result code (Python 3.11+: `sqlite_errorcode`). Only the codes that
are about the file and its disk are translated; anything else (a constraint, a bug in a query) is left
as it is, so a programming error still shows as one. In particular a full disk is never "damaged": a
failed write leaves the file as it was (SQLite rolls back), and SQLite reports some out-of-space cases
(growing the shared-memory file, a write the OS refuses with EFBIG) as a plain I/O error, so an I/O error
is a full disk when the disk (or the file size limit) says so.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from projects.errors import (
    CorruptProjectError,
    DiskFullError,
    ProjectBusyError,
    ProjectError,
    ProjectIOError,
    ProjectReadOnlyError,
)

# Primary result codes (https://sqlite.org/rescode.html); extended codes carry them in the low byte.
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26

# Below this much free space, an I/O error while writing is taken to be the disk running out.
LOW_SPACE_BYTES = 1 << 20


def sqlite_error_of(exc: BaseException) -> sqlite3.Error | None:
    """The sqlite3 error behind `exc` (SQLAlchemy wraps it), or None."""
    if isinstance(exc, DBAPIError):
        exc = exc.orig  # type: ignore[assignment]
    return exc if isinstance(exc, sqlite3.Error) else None


def storage_error(path: Path, exc: BaseException, *, unknown_is_damage: bool = False) -> ProjectError | None:
    """The ProjectError that `exc` (a sqlite3 or SQLAlchemy error about `path`) means, or None to let it be.

    `unknown_is_damage`: while checking a file on open, any other database error means it is not healthy."""
    error = sqlite_error_of(exc)
    if error is None:
        return None
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return ProjectBusyError(path)
    if primary == SQLITE_READONLY:
        return ProjectReadOnlyError(path, "it cannot be changed (the file or its folder is not writable)")
    if primary in (SQLITE_FULL, SQLITE_IOERR):
        full = out_of_space(path)
        if full is not None:
            return full
        return DiskFullError(path) if primary == SQLITE_FULL else ProjectIOError(path, "disk I/O error")
    if primary == SQLITE_CANTOPEN:
        return ProjectIOError(path, "it cannot be opened")
    if primary in (SQLITE_CORRUPT, SQLITE_NOTADB) or (unknown_is_damage and isinstance(error, sqlite3.DatabaseError)):
        return CorruptProjectError(path, str(error))
    return None


def out_of_space(path: Path) -> DiskFullError | None:
    """Why nothing more fits beside `path` (a nearly full disk, the file size limit), or None if it does."""
    limit = _file_size_limit()
    if limit is not None:
        sizes = [_size(Path(f"{path}{suffix}")) for suffix in ("", "-wal", "-journal")]
        if max(sizes) + LOW_SPACE_BYTES >= limit:
            reason = f"no room to write: the file size limit ({limit} bytes, ulimit -f) was reached"
            return DiskFullError(path, reason, "raise the limit")
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    return DiskFullError(path) if free < LOW_SPACE_BYTES else None


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows has no such limit
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
