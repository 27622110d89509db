"""The queue loop on its own (no Qt): outcomes, PNG metadata, and out of memory pausing the queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from pytestqt.qtbot import QtBot

from desktop.render_loop import JobResult, Outcome, QueueLoop, request_of_png
from desktop.render_thread import RenderThread
from engine.providers import load_demo_model
from engine.runner import LoadedModel, Runner
from projects.database import Project
from projects.models import JobStatus
from projects.queue import JobSnapshot, list_jobs
from projects.scenes import find_scene, queue_scene
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


def out_of_memory_model(folder: Path) -> LoadedModel:
    """The real demo pipeline with the accelerator's failure injected: every call runs out of memory."""
    model = load_demo_model(folder)

    class Exhausted(type(model.pipeline)):  # type: ignore[misc]
        def __call__(self, *_args: object, **_kwargs: object) -> None:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    model.pipeline.__class__ = Exhausted  # this one pipeline only
    return model


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
            assert render is not None and request_of_png(render.png) == job.request
    assert request_of_png(b"not a png") is None


def test_out_of_memory_fails_the_job_and_pauses_the_thread(qtbot: QtBot, tmp_path: Path, demo_model: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=2, steps=2)
    with Project.open(path) as project:
        with project.write() as session:
            first = queue_scene(session, find_scene(session, "s0"))
            second = queue_scene(session, find_scene(session, "s1"))
        thread = RenderThread(project, lambda _id: out_of_memory_model(demo_model))
        with qtbot.waitSignal(thread.pausedChanged, timeout=60_000) as paused:
            thread.start()
        assert paused.args[0] is True and "out of memory" in paused.args[1]
        assert thread.shutdown()
        with project.read() as session:
            jobs = {job.id: job for job in list_jobs(session)}
    assert jobs[first.id].status is JobStatus.FAILED
    assert "out of memory even after trying" in (jobs[first.id].error or "")
    assert jobs[second.id].status is JobStatus.PENDING  # not failed behind it


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
