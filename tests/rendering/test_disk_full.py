"""A disk that fills while a render is stored (issue 15, item 9): the user reads that the disk is full (not
"damaged", no traceback), the job stays pending, and the project passes `PRAGMA integrity_check`.

Two real ways to run out of room: SQLite's own page limit (SQLITE_FULL, as from a full disk), and a file
size limit (`ulimit -f`, RLIMIT_FSIZE with SIGXFSZ ignored, so the write gets EFBIG: SQLite says "disk I/O
error") in a child process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from engine.request import RenderRequest
from engine.runner import RenderResult
from projects.database import Project
from projects.models import JobStatus
from projects.queue import list_jobs
from projects.scenes import find_scene, queue_scene
from rendering.outcomes import Outcome
from rendering.queue_loop import QueueLoop
from tests.cli.test_render import shapes_project
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")


class NoisyRunner:
    """Renders at once (no model) an image of noise, whose PNG is large: it does not fit."""

    def render(self, request: RenderRequest, **_options: object) -> RenderResult:
        image = np.random.default_rng(0).integers(0, 256, (384, 384, 3), dtype=np.uint8)
        return RenderResult(image, request, {"total": 0.0}, {}, "cpu", "fp32")


class Quiet:
    def job_started(self, job: object) -> None: ...

    def job_progress(self, *args: object) -> None: ...

    def job_ended(self, result: object) -> None: ...


def queued_project(tmp_path: Path) -> Path:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    with Project.open(path) as project, project.write() as session:
        queue_scene(session, find_scene(session, "s0"))
        queue_scene(session, find_scene(session, "s0"))  # a second job: the loop stops before it
    return path


def assert_intact_with_jobs_pending(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    with Project.open(path) as project, project.read() as session:
        jobs = list_jobs(session)
    assert [(job.status, job.attempts) for job in jobs] == [(JobStatus.PENDING, 0)] * 2


def test_a_full_database_keeps_the_job_pending_and_says_the_disk_is_full(tmp_path: Path) -> None:
    path = queued_project(tmp_path)
    with Project.open(path) as project:
        with project.read() as session:
            pages = int(session.connection().exec_driver_sql("PRAGMA page_count").scalar_one())
        project.engine.dispose()

        @event.listens_for(project.engine, "connect")
        def _no_room(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 4}")  # SQLITE_FULL past it

        results = QueueLoop(project, NoisyRunner(), Quiet()).run_until_empty()  # type: ignore[arg-type]
    (result,) = results
    assert result.outcome is Outcome.NOT_STORED and result.error is not None
    assert "the disk is full" in result.error and "the job is back in the queue" in result.error
    assert "damaged" not in result.error and "SQL" not in result.error
    assert_intact_with_jobs_pending(path)


CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.rendering.test_disk_full import NoisyRunner, Quiet
    from projects.database import Project
    from rendering.queue_loop import QueueLoop

    path = Path(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit get EFBIG instead of a kill
    limit = path.stat().st_size + 64 * 1024
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    with Project.open(path) as project:
        (result,) = QueueLoop(project, NoisyRunner(), Quiet()).run_until_empty()
    print(json.dumps({"outcome": result.outcome.value, "error": result.error}))
    """
)


def test_a_file_size_limit_reached_while_storing_keeps_the_job_pending(tmp_path: Path) -> None:
    path = queued_project(tmp_path)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert child.returncode == 0, child.stderr
    assert "Traceback" not in child.stderr
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["outcome"] == Outcome.NOT_STORED.value
    assert "the file size limit" in result["error"] and "ulimit -f" in result["error"]
    assert "the job is back in the queue" in result["error"] and "damaged" not in result["error"]
    assert_intact_with_jobs_pending(path)
