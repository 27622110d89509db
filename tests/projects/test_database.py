import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import select, text

from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects import queue
from projects.database import Project
from projects.errors import (
    CorruptProjectError,
    NotAProjectError,
    ProjectExistsError,
    ProjectLockedError,
    ProjectNotFoundError,
    ProjectTooNewError,
)
from projects.locking import lock_path_for
from projects.models import Instance, Render, RenderJob, Scene
from projects.scenes import SceneLayout, add_scene, get_settings
from tests.conftest import REPO_ROOT


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_refused_untouched(path: Path, error: type[Exception], match: str) -> None:
    """Opening `path` fails with `error`, and leaves the file byte for byte as it was, with no lock behind."""
    before = digest(path)
    with pytest.raises(error, match=match):
        Project.open(path)
    assert digest(path) == before
    assert not lock_path_for(path).exists()


def layout(name: str = "scene") -> SceneLayout:
    return SceneLayout(
        name=name,
        caption="shapes",
        width=512,
        height=512,
        instances=(InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.4, 0.4)),),
    )


# --- create and reopen ------------------------------------------------------------------------


def test_new_project_has_default_settings_and_reopens(project_path: Path) -> None:
    with Project.create(project_path, name="My shapes") as project, project.write() as session:
        add_scene(session, layout("first"))
    with Project.open(project_path) as project, project.read() as session:
        settings = get_settings(session)
        assert (settings.name, settings.width, settings.steps, settings.scheduler) == ("My shapes", 512, 50, "plms")
        assert [s.name for s in session.scalars(select(Scene))] == ["first"]
    assert [p.name for p in project_path.parent.iterdir()] == [project_path.name], "no temp, WAL or lock file left"


def test_new_project_gets_ordinary_file_permissions(project_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        Project.create(project_path).close()
    finally:
        os.umask(umask)
    assert project_path.stat().st_mode & 0o777 == 0o644


def test_create_refuses_an_existing_file(project_path: Path) -> None:
    project_path.write_text("precious")
    with pytest.raises(ProjectExistsError):
        Project.create(project_path)
    assert project_path.read_text() == "precious"


def test_connections_use_wal_full_sync_and_foreign_keys(project: Project) -> None:
    with project.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA application_id")).scalar() == 0x49535444


def test_write_session_takes_the_write_lock_at_begin(project: Project) -> None:
    other = sqlite3.connect(project.path, timeout=0, isolation_level=None)
    try:
        with project.write() as session:
            session.execute(text("SELECT 1"))  # no write yet: BEGIN IMMEDIATE holds the lock anyway
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
        with project.read() as session:
            session.execute(text("SELECT count(*) FROM scenes")).scalar()
            other.execute("BEGIN IMMEDIATE")  # a reader does not block writers
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_failed_write_is_rolled_back(project: Project) -> None:
    def doomed_edit() -> None:
        with project.write() as session:
            add_scene(session, layout("doomed"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        doomed_edit()
    with project.read() as session:
        assert session.scalars(select(Scene)).all() == []


def test_writers_in_threads_all_land(project: Project) -> None:
    def write_scenes(prefix: str) -> None:
        for i in range(10):
            with project.write() as session:
                add_scene(session, layout(f"{prefix}{i}"))

    threads = [threading.Thread(target=write_scenes, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with project.read() as session:
        positions = sorted(session.scalars(select(Scene.position)))
    assert positions == list(range(30)), "each scene got its own position"


def test_deleting_a_scene_removes_its_instances_and_renders_but_keeps_jobs(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(session, layout())
        queue.enqueue(session, RenderRequest(prompt="x"), scene.id)
        job = queue.claim_next(session)
        assert job is not None
        queue.finish(session, job.id, queue.RenderOutput(b"png", b"thumb", {}, {}))
    with project.write() as session:
        session.delete(session.get(Scene, scene.id))
    with project.read() as session:
        assert session.scalars(select(Instance)).all() == []
        assert session.scalars(select(Render)).all() == []
        (job_row,) = session.scalars(select(RenderJob)).all()
        assert job_row.scene_id is None


# --- opening what is not a healthy project ----------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFoundError, match="no such project file"):
        Project.open(tmp_path / "nope.instproj")
    assert not (tmp_path / "nope.instproj").exists()


def test_folder(tmp_path: Path) -> None:
    with pytest.raises(NotAProjectError, match="folder"):
        Project.open(tmp_path)


@pytest.mark.parametrize("content", [b"", b"hello, world", b"\x89PNG\r\n\x1a\n" + bytes(200)])
def test_file_that_is_not_sqlite(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.instproj"
    path.write_bytes(content)
    assert_refused_untouched(path, NotAProjectError, "not an SQLite database")


def test_sqlite_database_of_another_program(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    assert_refused_untouched(path, NotAProjectError, "another program")


def test_truncated_project_is_reported_damaged_and_left_untouched(project_path: Path) -> None:
    with Project.create(project_path) as project, project.write() as session:
        for i in range(40):
            add_scene(session, layout(f"scene {i} " + "x" * 150))
    data = project_path.read_bytes()
    project_path.write_bytes(data[: len(data) // 2])
    assert_refused_untouched(project_path, CorruptProjectError, "damaged")


def test_garbage_after_a_valid_header_is_reported_damaged(tmp_path: Path) -> None:
    path = tmp_path / "junk.instproj"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    with pytest.raises((CorruptProjectError, NotAProjectError)):
        Project.open(path)


def test_project_from_a_newer_app_is_refused_untouched(project_path: Path) -> None:
    Project.create(project_path).close()
    conn = sqlite3.connect(project_path)
    conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.commit()
    conn.close()
    assert_refused_untouched(project_path, ProjectTooNewError, "newer Instance Studio")


# --- the lock file ----------------------------------------------------------------------------


def test_second_open_in_the_same_app_is_refused(project: Project) -> None:
    with pytest.raises(ProjectLockedError, match="already open"):
        Project.open(project.path)


def test_open_in_another_process_is_refused_until_it_closes(project_path: Path) -> None:
    Project.create(project_path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from projects.database import Project; p = Project.open(sys.argv[1]); "
            "print('open', flush=True); sys.stdin.readline(); p.close()",
            str(project_path),
        ],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(ProjectLockedError, match=f"process {holder.pid}"):
            Project.open(project_path)
    finally:
        holder.communicate("\n", timeout=30)
    Project.open(project_path).close()


def test_lock_left_by_a_dead_process_is_taken_over(project_path: Path) -> None:
    Project.create(project_path).close()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock_path_for(project_path).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with Project.open(project_path) as project:
        assert project.is_open
    assert not lock_path_for(project_path).exists()


def test_empty_lock_file_from_a_crash_mid_write_is_stale(project_path: Path) -> None:
    Project.create(project_path).close()
    lock_path_for(project_path).write_text("")
    Project.open(project_path).close()


def test_lock_held_from_another_machine_is_respected(project_path: Path) -> None:
    Project.create(project_path).close()
    lock_path_for(project_path).write_text(json.dumps({"pid": 1, "host": "studio-pc-2"}))
    with pytest.raises(ProjectLockedError, match="studio-pc-2"):
        Project.open(project_path)
