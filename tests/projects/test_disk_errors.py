"""What a failed SQLite call means for the user (issue 15, items 8-10): busy, read-only, disk full (also when
SQLite calls it an I/O error), damaged only when it is damaged, and never SQL text."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from projects import storage_errors
from projects.database import Project
from projects.errors import (
    CorruptProjectError,
    DiskFullError,
    ProjectBusyError,
    ProjectError,
    ProjectIOError,
    ProjectReadOnlyError,
)
from projects.locking import lock_path_for
from projects.scenes import SceneLayout, add_scene, list_scenes
from projects.storage_errors import storage_error


def sqlite_error(code: int, message: str) -> sqlite3.Error:
    """An error as sqlite3 raises it, for the codes a test cannot easily provoke (a failing disk)."""
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code
    return error


def raised(action: Callable[[], object]) -> sqlite3.Error:
    with pytest.raises(sqlite3.Error) as caught:
        action()
    return caught.value


def real_errors(tmp_path: Path) -> dict[str, sqlite3.Error]:
    """Errors SQLite really raises, each for its reason."""
    db = tmp_path / "real.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE t (x PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    other = sqlite3.connect(db, isolation_level=None, timeout=0)
    conn.execute("BEGIN IMMEDIATE")
    busy = raised(lambda: other.execute("BEGIN IMMEDIATE"))
    conn.execute("ROLLBACK")
    constraint = raised(lambda: conn.execute("INSERT INTO t VALUES (1)"))
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    full = raised(lambda: conn.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,)))
    read_only = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    readonly = raised(lambda: read_only.execute("INSERT INTO t VALUES (2)"))
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    notadb = raised(lambda: sqlite3.connect(junk).execute("SELECT * FROM sqlite_master"))
    for c in (conn, other, read_only):
        c.close()
    return {"busy": busy, "constraint": constraint, "full": full, "readonly": readonly, "notadb": notadb}


@pytest.mark.parametrize("free", [4 * 1024, 24 * 1024, 64 * 1024, 10 << 30], ids=["4K", "24K", "64K", "10G"])
def test_each_sqlite_failure_becomes_its_own_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    path = tmp_path / "p.instproj"
    monkeypatch.setattr("projects.storage_errors.shutil.disk_usage", lambda _p: type("Usage", (), {"free": free})())
    low = free < storage_errors.LOW_SPACE_BYTES
    real = real_errors(tmp_path)
    cases: list[tuple[BaseException, type[ProjectError] | None]] = [
        (real["busy"], ProjectBusyError),
        (real["readonly"], ProjectReadOnlyError),
        (real["full"], DiskFullError),
        (real["notadb"], CorruptProjectError),
        (real["constraint"], None),  # a bug, not the disk: left as it is
        (sqlite_error(11, "database disk image is malformed"), CorruptProjectError),
        (sqlite_error(14, "unable to open database file"), ProjectIOError),
    ]
    # SQLite's I/O errors (writing, growing the shared memory, syncing): a full disk when it is one.
    for code in (10, 778, 1034, 4874):
        cases.append((sqlite_error(code, "disk I/O error"), DiskFullError if low else ProjectIOError))
    for error, expected in cases:
        for wrapped in (error, OperationalError("BEGIN IMMEDIATE", {}, error)):  # SQLAlchemy's wrapping too
            for on_open in (False, True):
                translated = storage_error(path, wrapped, unknown_is_damage=on_open)
                if expected is None and not on_open:
                    assert translated is None
                    continue
                expected_type = CorruptProjectError if expected is None else expected
                assert type(translated) is expected_type, (error, on_open)
                text = str(translated)
                assert text.startswith(f"{path}: ") and "\n" not in text and "SQL" not in text
                if expected_type is DiskFullError:
                    assert "the disk is full" in text and "damaged" not in text


def test_a_write_waits_for_another_program_then_says_the_file_is_busy(tmp_path: Path) -> None:
    path = tmp_path / "p.instproj"
    Project.create(path).close()
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    with Project.open(path, busy_timeout=0.3) as project:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(ProjectBusyError) as caught, project.write() as session:
            add_scene(session, SceneLayout("lost?", "", 64, 64))
        assert 0.25 <= time.monotonic() - started < 3
        message = str(caught.value)
        assert (
            message
            == f"{path}: the project file is busy (another program is writing to it); try again when it is done"
        )
        # It waits as long as the other program needs, within the timeout, then writes.
        threading.Timer(0.2, lambda: holder.execute("COMMIT")).start()
        with project.write(wait=5) as session:
            add_scene(session, SceneLayout("written", "", 64, 64))
        with project.read() as session:
            assert [scene.name for scene in list_scenes(session)] == ["written"]
    holder.close()


def test_a_read_only_project_reads_refuses_writes_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "p.instproj"
    with Project.create(path) as project, project.write() as session:
        add_scene(session, SceneLayout("kept", "", 64, 64))
    before = path.read_bytes()
    # Root ignores permissions; `read_only=True` is the path a read-only file or folder takes.
    with Project.open(path, read_only=True) as project:
        assert project.read_only and not lock_path_for(path).exists()
        with project.read() as session:
            assert [scene.name for scene in list_scenes(session)] == ["kept"]
        refused = r": the project file is read-only: it can be viewed"
        with pytest.raises(ProjectReadOnlyError, match=refused), project.write() as session:
            add_scene(session, SceneLayout("refused", "", 64, 64))
        # Even a write that slips past `write` (a raw session) is refused by SQLite, in the same words.
        with pytest.raises(ProjectReadOnlyError), project.read() as session:
            session.connection().exec_driver_sql("DELETE FROM scenes")
        assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "no -wal, -shm or lock file"
        # A second reader at the same time is fine: nothing is locked.
        with Project.open(path, read_only=True) as again, again.read() as session:
            assert len(list_scenes(session)) == 1
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
