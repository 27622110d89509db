"""The queue served on a plain thread (no Qt): an idle worker stops at once, and running out of memory
fails the job and pauses the queue instead of failing every job behind it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from engine.providers import load_demo_model
from engine.runner import LoadedModel
from projects.database import Project
from projects.models import JobStatus
from projects.queue import JobSnapshot, list_jobs
from projects.scenes import find_scene, queue_scene
from rendering.outcomes import JobResult
from rendering.worker import OUT_OF_MEMORY_PAUSE, QueueWorker
from tests.cli.test_render import shapes_project


@pytest.fixture
def demo_model(untrained_demo_model: Path) -> Path:
    return untrained_demo_model


def out_of_memory_model(folder: Path) -> LoadedModel:
    """The real demo pipeline with the accelerator's failure injected: every call runs out of memory."""
    model = load_demo_model(folder)

    class Exhausted(type(model.pipeline)):  # type: ignore[misc]
        def render(self, *_args: object, **_kwargs: object) -> None:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")

    model.pipeline.__class__ = Exhausted  # this one pipeline only
    return model


class Ended:
    def __init__(self) -> None:
        self.results: list[JobResult] = []

    def job_started(self, job: JobSnapshot) -> None:
        pass

    def job_progress(self, job_id: int, step: int, total: int, preview: object) -> None:
        pass

    def job_ended(self, result: JobResult) -> None:
        self.results.append(result)


def serve(worker: QueueWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.serve, name="test-render-worker", daemon=True)
    thread.start()
    return thread


def test_out_of_memory_fails_the_job_and_pauses_the_worker(tmp_path: Path, demo_model: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=2, steps=2)
    paused = threading.Event()
    reasons: list[tuple[bool, str]] = []

    def on_paused(is_paused: bool, reason: str) -> None:
        reasons.append((is_paused, reason))
        paused.set()

    with Project.open(path) as project:
        with project.write() as session:
            first = queue_scene(session, find_scene(session, "s0"))
            second = queue_scene(session, find_scene(session, "s1"))
        ended = Ended()
        worker = QueueWorker(project, lambda _id: out_of_memory_model(demo_model), ended, on_paused=on_paused)
        thread = serve(worker)
        assert paused.wait(timeout=60)
        worker.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()
        with project.read() as session:
            jobs = {job.id: job for job in list_jobs(session)}
    assert reasons == [(True, OUT_OF_MEMORY_PAUSE)] and worker.paused
    assert [result.job.id for result in ended.results] == [first.id]
    assert jobs[first.id].status is JobStatus.FAILED
    assert jobs[second.id].status is JobStatus.PENDING  # not failed behind it


def test_an_idle_or_paused_worker_stops_at_once(tmp_path: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1)

    def no_model(_model_id: str) -> LoadedModel:
        raise AssertionError("nothing to render, so no model is loaded")

    with Project.open(path) as project:
        for paused in (False, True):
            worker = QueueWorker(project, no_model, Ended(), paused=paused)
            thread = serve(worker)
            worker.wake()
            worker.stop()
            thread.join(timeout=10)
            assert not thread.is_alive() and worker.running_job is None
            assert not worker.cancel_running(1)
