"""The queue loop on its own (no Qt): outcomes, the stored PNG and its metadata, cancel and stop."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.providers import load_demo_model
from engine.request import RenderRequest
from engine.runner import RenderResult, Runner
from projects.database import Project
from projects.errors import LayoutFormatError
from projects.models import JobStatus
from projects.png_metadata import HASHES_KEY, VERSION_KEY, app_version, request_from_png
from projects.queue import JobSnapshot, list_jobs, request_cancel
from projects.scenes import find_scene, queue_scene
from rendering.outcomes import JobResult, Outcome
from rendering.output import THUMBNAIL_SIDE
from rendering.queue_loop import QueueLoop
from tests.cli.test_render import shapes_project


@pytest.fixture
def demo_model(untrained_demo_model: Path) -> Path:
    return untrained_demo_model


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def job_started(self, job: JobSnapshot) -> None:
        self.events.append(("started", job.id))

    def job_progress(self, job_id: int, step: int, total: int, preview: object) -> None:
        self.events.append(("progress", step))

    def job_ended(self, result: JobResult) -> None:
        self.events.append(("ended", result.outcome))


def test_a_render_is_stored_with_its_request_in_the_png(tmp_path: Path, demo_model: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    with Project.open(path) as project:
        with project.write() as session:
            job = queue_scene(session, find_scene(session, "s0"))
        recorder = Recorder()
        loop = QueueLoop(project, Runner(lambda _id: load_demo_model(demo_model)), recorder)
        (result,) = loop.run_until_empty()
        assert result.outcome is Outcome.DONE and result.render_id is not None
        assert recorder.events[0] == ("started", job.id) and recorder.events[-1] == ("ended", Outcome.DONE)
        from projects.models import Render

        with project.read() as session:
            render = session.get(Render, result.render_id)
            assert render is not None and request_from_png(render.png) == job.request
            with Image.open(io.BytesIO(render.png)) as image:
                assert image.text[VERSION_KEY] == app_version()  # type: ignore[attr-defined]
                assert json.loads(image.text[HASHES_KEY]) == render.model_hashes  # type: ignore[attr-defined]
            with Image.open(io.BytesIO(render.thumbnail)) as thumbnail:
                assert max(thumbnail.size) <= THUMBNAIL_SIDE
    with pytest.raises(LayoutFormatError, match="not a PNG image"):
        request_from_png(b"not a png")


@pytest.mark.parametrize("cancel_it", [True, False])
def test_cancel_and_stop_take_effect_within_a_step(tmp_path: Path, demo_model: Path, cancel_it: bool) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=200)
    with Project.open(path) as project:
        with project.write() as session:
            job = queue_scene(session, find_scene(session, "s0"))
        recorder = Recorder()
        loop = QueueLoop(project, Runner(lambda _id: load_demo_model(demo_model)), recorder)

        def progress(job_id: int, step: int, total: int, preview: object) -> None:
            if step == 3 and cancel_it:
                assert loop.cancel_running(job_id)
            elif step == 3:
                loop.stop()
            recorder.events.append(("progress", step))

        recorder.job_progress = progress  # type: ignore[method-assign]
        result = loop.run_one()
        assert result is not None
        assert result.outcome is (Outcome.CANCELLED if cancel_it else Outcome.REQUEUED)
        assert max(step for kind, step in recorder.events if kind == "progress") <= 4
        with project.read() as session:
            (stored,) = list_jobs(session)
    assert stored.status is (JobStatus.CANCELLED if cancel_it else JobStatus.PENDING)
    assert not loop.cancel_running(job.id)  # nothing runs any more


def test_a_cancel_stored_in_the_project_stops_the_render(tmp_path: Path, demo_model: Path) -> None:
    # The window (through its store) or another process stores the user's cancel; the loop reads it with its
    # next progress write and ends the job cancelled.
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=400)
    with Project.open(path) as project:
        with project.write() as session:
            job = queue_scene(session, find_scene(session, "s0"))
        steps: list[int] = []

        def progress(job_id: int, step: int, total: int, preview: object) -> None:
            steps.append(step)
            if step == 3:
                with project.write() as session:
                    request_cancel(session, job_id)

        recorder = Recorder()
        recorder.job_progress = progress  # type: ignore[method-assign]
        loop = QueueLoop(project, Runner(lambda _id: load_demo_model(demo_model)), recorder)
        result = loop.run_one()
        with project.read() as session:
            (stored,) = list_jobs(session)
    assert result is not None and result.outcome is Outcome.CANCELLED
    assert stored.id == job.id and stored.status is JobStatus.CANCELLED and max(steps) < 400


# --- a project file another program is writing (issue 15, item 8) ---------------------------


class WriterHoldingTheLock:
    """Another program (a real second SQLite connection, on its own thread) holding the project's write
    lock with BEGIN IMMEDIATE, from `start()` until `hold_s` has passed or `release()`."""

    def __init__(self, path: Path, hold_s: float = 3600.0) -> None:
        self.path, self.hold_s = path, hold_s
        self.held, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.held.set()
            self._release.wait(self.hold_s)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def start(self) -> None:
        self._thread.start()
        assert self.held.wait(5)

    def release(self) -> None:
        self._release.set()
        self._thread.join(5)


class RunnerThenWriter:
    """Renders a tiny image at once (no model), and lets `writer` take the lock just before it returns:
    the loop meets the busy file exactly when it stores the result."""

    def __init__(self, writer: WriterHoldingTheLock) -> None:
        self.writer = writer

    def render(self, request: RenderRequest, **_options: object) -> RenderResult:
        self.writer.start()
        image = np.full((8, 8, 3), 200, dtype=np.uint8)
        return RenderResult(image, request, {"total": 0.0}, {}, "cpu", "fp32")


def queued_project(tmp_path: Path) -> tuple[Path, int]:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    with Project.open(path) as project, project.write() as session:
        job = queue_scene(session, find_scene(session, "s0"))
    return path, job.id


def run_against(path: Path, writer: WriterHoldingTheLock, patience: float) -> tuple[JobResult, float]:
    with Project.open(path, busy_timeout=0.1) as project:
        loop = QueueLoop(project, RunnerThenWriter(writer), Recorder(), store_patience_s=patience)  # type: ignore[arg-type]
        started = time.monotonic()
        try:
            results = loop.run_until_empty()
        finally:
            writer.release()
    (result,) = results
    return result, time.monotonic() - started


def test_a_render_finished_while_another_program_writes_is_stored_once_it_is_done(tmp_path: Path) -> None:
    path, job_id = queued_project(tmp_path)
    result, seconds = run_against(path, WriterHoldingTheLock(path, hold_s=0.6), patience=10.0)
    assert result.outcome is Outcome.DONE and result.error is None
    assert seconds >= 0.5  # it waited for the other writer, then stored
    with Project.open(path) as project, project.read() as session:
        (job,) = list_jobs(session)
        assert job.id == job_id and job.status is JobStatus.DONE


def test_a_file_busy_for_longer_keeps_the_job_pending_and_says_why(tmp_path: Path) -> None:
    # Busy past the loop's patience (1 s), free again before putting the job back has given up.
    path, job_id = queued_project(tmp_path)
    result, seconds = run_against(path, WriterHoldingTheLock(path, hold_s=1.6), patience=1.0)
    assert result.outcome is Outcome.NOT_STORED and result.error is not None
    assert "the project file is busy (another program is writing to it)" in result.error
    assert "the job is back in the queue" in result.error
    assert "SQL" not in result.error and "sqlite" not in result.error.lower()
    assert seconds < 5
    with Project.open(path) as project, project.read() as session:
        (job,) = list_jobs(session)
    assert job.id == job_id and job.status is JobStatus.PENDING and job.attempts == 0  # put back: no attempt spent


def test_a_file_that_stays_busy_ends_the_loop_and_the_job_is_recovered_at_the_next_open(tmp_path: Path) -> None:
    path, job_id = queued_project(tmp_path)
    with Project.open(path) as project, project.write() as session:
        queue_scene(session, find_scene(session, "s0"))  # a second job: the loop must not go on to it
    result, _ = run_against(path, WriterHoldingTheLock(path), patience=0.3)
    assert result.outcome is Outcome.NOT_STORED and result.error is not None
    assert "busy" in result.error and "when the project is next opened" in result.error
    with Project.open(path) as project, project.read() as session:
        jobs = list_jobs(session)
    assert [(job.id, job.status) for job in jobs] == [(job_id, JobStatus.PENDING), (job_id + 1, JobStatus.PENDING)]
