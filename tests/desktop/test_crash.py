"""Killing a rendering process at random moments loses nothing that was committed.

A child process renders the queue and edits a scene between renders, printing a line after each commit.
It is killed with SIGKILL at a random moment, many times; after each kill the project must open, pass
`PRAGMA integrity_check`, hold every render and edit the child reported, and have its interrupted job
pending again (or failed after its attempts). For many more kills:

    INSTANCE_STUDIO_CRASH_KILLS=200 .venv/bin/python -m pytest tests/desktop/test_crash.py -s
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from projects.database import Project
from projects.models import JobStatus
from projects.queue import JobSnapshot, list_jobs
from projects.scenes import find_scene, queue_scene
from tests.cli.test_render import shapes_project
from tests.conftest import REPO_ROOT

KILLS = int(os.environ.get("INSTANCE_STUDIO_CRASH_KILLS", "6"))


@pytest.fixture
def demo_model(untrained_demo_model: Path) -> Path:
    return untrained_demo_model


class Worker:
    """The child (tests/desktop/crash_child.py --fork): it imports once, then forks a fresh process for each
    run, which the test SIGKILLs; its lines arrive on a queue, in order."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.desktop.crash_child", "--fork"],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(line.strip())

    def next_line(self, timeout: float) -> str:
        return self.lines.get(timeout=timeout)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_and_kill(worker: Worker, path: Path, model: Path, rng: random.Random) -> list[str]:
    """Fork a run and SIGKILL it at a random moment of its work: after a random number of its commit lines
    (0 to 4), plus a random fraction of a second. Returns the lines it printed before dying."""
    assert worker.proc.stdin is not None
    worker.proc.stdin.write(f"{path} {model}\n")
    worker.proc.stdin.flush()
    lines: list[str] = []
    pid, ended = 0, False
    wanted, deadline = rng.randint(0, 4), time.monotonic() + 60

    def take(line: str) -> None:
        nonlocal pid, ended
        if line.startswith("forked "):
            pid = int(line.split()[1])
        elif line == "ended":  # the child has reaped the run: nothing of it runs on
            ended = True
        else:
            lines.append(line)

    while not ended and (not pid or len(lines) < wanted) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            take(worker.next_line(timeout=0.01))
    if not ended:
        assert pid, "the child forked no run"  # os.kill(0) would hit this process group
        time.sleep(rng.uniform(0.0, 1.0))
        os.kill(pid, signal.SIGKILL)  # not reaped yet (no "ended"), so the pid is still the run's
    while not ended:
        take(worker.next_line(timeout=60))
    return lines


def jobs_of(path: Path) -> list[JobSnapshot]:
    with Project.open(path) as project, project.read() as session:
        return list(list_jobs(session))


def check_survivors(path: Path, lines: list[str]) -> None:
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        renders = {row[0] for row in db.execute("SELECT id FROM renders")}
    reported = {int(line.split()[1]) for line in lines if line.startswith("render ")}
    assert reported <= renders, "a committed render was lost"
    edits = [int(line.split()[1]) for line in lines if line.startswith("edit ")]
    with Project.open(path) as project, project.read() as session:
        caption = find_scene(session, "s0").caption
        jobs = list_jobs(session)
    if edits:
        # The last reported edit is there, or a newer one (committed just before the kill, not yet printed).
        assert caption.startswith("edit ") and int(caption.split()[1]) >= edits[-1], "a committed edit was lost"
    assert not [job for job in jobs if job.status is JobStatus.RUNNING], "a job was left running"
    for job in jobs:
        assert job.status in (JobStatus.PENDING, JobStatus.DONE, JobStatus.FAILED), job
        if job.status is JobStatus.FAILED:
            assert job.error is not None and "interrupted" in job.error


def test_sigkill_at_random_moments_loses_nothing_committed(tmp_path: Path, demo_model: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=2, steps=6)
    with Project.open(path) as project, project.write() as session:
        for _ in range(6):
            for ref in ("s0", "s1"):
                queue_scene(session, find_scene(session, ref))
    rng = random.Random(1234)
    survived = mid_render = 0
    worker = Worker()
    try:
        for _ in range(KILLS):
            if not any(job.status is JobStatus.PENDING for job in jobs_of(path)):
                with Project.open(path) as project, project.write() as session:
                    queue_scene(session, find_scene(session, "s1"))
            lines = run_and_kill(worker, path, demo_model, rng)
            mid_render += bool(lines) and lines[-1].startswith("started")
            check_survivors(path, lines)
            survived += 1
    finally:
        worker.close()
    with closing(sqlite3.connect(path)) as db:
        renders = db.execute("SELECT count(*) FROM renders").fetchone()[0]
    print(f"\n{survived} kills survived ({mid_render} during a render); {renders} renders committed in all")
    assert survived == KILLS and renders > 0
