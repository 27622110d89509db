"""The queue loop on its own (no Qt): outcomes, the stored PNG and its metadata, cancel and stop."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.providers import load_demo_model
from engine.runner import Runner
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
