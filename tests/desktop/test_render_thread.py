"""The render thread: the queue worker (rendering.worker) on a QThread, reporting through signals."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.render_thread import RenderThread, abandoned_threads
from engine.providers import load_demo_model
from engine.runner import LoadedModel
from projects.database import Project
from projects.models import JobStatus
from projects.queue import list_jobs, requeue
from projects.scenes import find_scene, queue_scene
from tests.cli.test_render import shapes_project
from tests.rendering.test_worker import out_of_memory_model


@pytest.fixture
def demo_model(untrained_demo_model: Path) -> Path:
    return untrained_demo_model


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


def test_a_thread_that_cannot_stop_in_time_is_abandoned_and_writes_nothing_more(
    qtbot: QtBot, tmp_path: Path, demo_model: Path
) -> None:
    # The model takes longer to load than shutting down waits: the thread is left running (never destroyed while
    # it runs), hands back its job for the owner to put back, and once the load ends it stops without a write.
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=20)
    loading, loaded = threading.Event(), threading.Event()

    def slow_load(_model_id: str) -> LoadedModel:
        model = load_demo_model(demo_model)
        loading.set()
        loaded.wait(timeout=60)
        return model

    with Project.open(path) as project:
        with project.write() as session:
            job = queue_scene(session, find_scene(session, "s0"))
        thread = RenderThread(project, slow_load)
        ended: list[object] = []
        thread.jobEnded.connect(ended.append)
        thread.start()
        assert loading.wait(timeout=60)
        assert not thread.shutdown(timeout_ms=200)
        assert thread.abandoned_job == job.id and thread.isRunning()
        assert abandoned_threads() == [thread]
        with project.write() as session:
            assert list_jobs(session)[0].status is JobStatus.RUNNING  # untouched: the owner puts it back
            requeue(session, job.id)
        loaded.set()
        assert thread.wait(60_000)
        qtbot.wait(50)  # let any queued signal arrive
        with project.read() as session:
            (stored,) = list_jobs(session)
    assert stored.status is JobStatus.PENDING and stored.attempts == 0
    assert ended == [] and abandoned_threads() == []
