"""The render thread: the queue worker (rendering.worker) on a QThread, reporting through signals."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from desktop.render_thread import RenderThread
from projects.database import Project
from projects.models import JobStatus
from projects.queue import list_jobs
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
