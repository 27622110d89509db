"""Live previews served by the render worker between queue jobs: newest first, jobs first, no file writes."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest

from engine.providers import load_demo_model
from engine.request import InstanceKind, InstanceSpec, RenderRequest, Scheduler
from engine.runner import LoadedModel
from projects.database import Project
from projects.models import Render
from projects.queue import list_jobs
from projects.scene_data import InstanceData, SceneData, scene_request
from projects.scene_settings import ProjectDefaults, SceneSettings
from projects.scenes import find_scene, queue_scene
from rendering.live_preview import (
    DEMO_PREVIEW,
    PreviewQuality,
    PreviewResult,
    PreviewSlot,
    at_preview_quality,
    default_quality,
)
from rendering.worker import QueueWorker
from tests.cli.test_render import shapes_project
from tests.rendering.test_worker import Ended, serve

BOX = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
STAR = InstanceSpec("a blue star", InstanceKind.BOX, box=(0.5, 0.5, 0.9, 0.9))


def preview_request(x: float = 0.1, steps: int = 4) -> RenderRequest:
    moved = dataclasses.replace(BOX, box=(x, 0.1, x + 0.4, 0.5))
    return RenderRequest(
        prompt="shapes", width=64, height=64, seed=1, steps=steps, model_id="demo", instances=(moved, STAR)
    )


class Previews:
    def __init__(self) -> None:
        self.results: list[PreviewResult] = []
        self.arrived = threading.Condition()

    def __call__(self, result: PreviewResult) -> None:
        with self.arrived:
            self.results.append(result)
            self.arrived.notify_all()

    def wait_for(self, token: int, timeout: float = 60) -> PreviewResult:
        with self.arrived:
            assert self.arrived.wait_for(lambda: any(r.token == token for r in self.results), timeout), (
                f"no preview for {token}; got {[r.token for r in self.results]}"
            )
            return next(r for r in self.results if r.token == token)


def test_the_slot_keeps_only_the_newest_request() -> None:
    slot = PreviewSlot()
    slot.submit(1, preview_request(0.1))
    slot.submit(2, preview_request(0.2))
    assert slot.superseded(1) and not slot.superseded(2)
    assert slot.take() == (2, preview_request(0.2))
    assert slot.take() is None
    slot.put_back(2, preview_request(0.2))  # interrupted by a job, still the newest: it comes back
    assert slot.waiting
    slot.submit(3, preview_request(0.3))
    slot.put_back(2, preview_request(0.2))  # a newer one is waiting: the old one stays out
    assert slot.take() == (3, preview_request(0.3))
    slot.clear()
    assert slot.superseded(3) and not slot.waiting


def test_a_preview_keeps_the_layout_and_takes_the_preview_quality() -> None:
    full = preview_request(steps=50)
    preview = at_preview_quality(full, PreviewQuality(steps=8))
    assert (preview.steps, preview.scheduler) == (8, Scheduler.DPM_SOLVER_PP)
    assert dataclasses.replace(preview, steps=full.steps, scheduler=full.scheduler) == full
    assert at_preview_quality(preview_request(steps=3), PreviewQuality(steps=8)).steps == 3  # never more
    assert default_quality("demo") == DEMO_PREVIEW and default_quality("sd15").steps < DEMO_PREVIEW.steps


def test_a_scene_becomes_the_request_the_queue_would_render(tmp_path: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=3)
    with Project.open(path) as project, project.write() as session:
        job = queue_scene(session, find_scene(session, "s0"))
    defaults = ProjectDefaults.default()
    scene = SceneData(
        1,
        "s0",
        "a red circle on a white background",
        width=64,
        height=64,
        seed=0,
        settings=SceneSettings.from_overrides({"steps": 3}),
        instances=(
            InstanceData(InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))),
        ),
    )
    assert scene_request(scene, defaults) == job.request


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return shapes_project(tmp_path / "p.instproj", scenes=2, steps=2)


def test_an_idle_worker_renders_the_newest_preview_and_writes_nothing(
    project: Path, untrained_demo_model: Path
) -> None:
    before = project.read_bytes()
    previews = Previews()
    with Project.open(project) as opened:
        worker = QueueWorker(opened, lambda _id: load_demo_model(untrained_demo_model), Ended(), on_preview=previews)
        thread = serve(worker)
        try:
            worker.request_preview(1, preview_request(0.1))
            first = previews.wait_for(1)
            for token in range(2, 12):  # a drag: many edits in quick succession
                worker.request_preview(token, preview_request(0.1 + token / 40))
            last = previews.wait_for(11)
        finally:
            worker.stop()
            thread.join(timeout=30)
    assert first.error is None and first.image is not None and first.image.shape == (64, 64, 3)
    assert last.request == preview_request(0.1 + 11 / 40)  # the final geometry
    tokens = [r.token for r in previews.results]
    assert tokens == sorted(tokens) and len(tokens) < 11, "stale previews were rendered, not skipped"
    assert last.reused_instances == (1,), "the unmoved instance's chain is reused"
    assert project.read_bytes() == before  # closed: a write would have been checkpointed into the file
    with Project.open(project) as opened, opened.read() as session:
        assert session.query(Render).count() == 0 and list_jobs(session) == []


def test_a_queued_job_goes_before_a_running_preview(project: Path, untrained_demo_model: Path) -> None:
    events: list[str] = []
    preview_started = threading.Event()

    def provider(_id: str) -> LoadedModel:
        model = load_demo_model(untrained_demo_model)
        unet = model.pipeline.unet

        def slow(_module: object, args: tuple[object, ...]) -> None:
            preview_started.set()
            time.sleep(0.05)  # a long preview: the job must not wait for it to end

        unet.register_forward_pre_hook(slow)
        return model

    class Recording(Ended):
        def job_ended(self, result: object) -> None:
            events.append("job")
            super().job_ended(result)  # type: ignore[arg-type]

    def on_preview(result: PreviewResult) -> None:
        events.append(f"preview {result.token}")

    ended = Recording()
    with Project.open(project) as opened:
        worker = QueueWorker(opened, provider, ended, on_preview=on_preview)
        thread = serve(worker)
        try:
            worker.request_preview(1, preview_request(steps=16))  # >= 0.8 s with the hook: the job comes mid-way
            assert preview_started.wait(timeout=60)
            with opened.write() as session:
                queue_scene(session, find_scene(session, "s0"))
            worker.wake()
            deadline = time.monotonic() + 120
            while "preview 1" not in events and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            worker.stop()
            thread.join(timeout=30)
    assert events == ["job", "preview 1"], "the job went first; the interrupted preview came back after it"


def test_a_paused_queue_still_previews(project: Path, untrained_demo_model: Path) -> None:
    previews = Previews()
    with Project.open(project) as opened:
        with opened.write() as session:
            queue_scene(session, find_scene(session, "s0"))
        ended = Ended()
        worker = QueueWorker(
            opened, lambda _id: load_demo_model(untrained_demo_model), ended, paused=True, on_preview=previews
        )
        thread = serve(worker)
        try:
            worker.request_preview(1, preview_request())
            assert previews.wait_for(1).image is not None
        finally:
            worker.stop()
            thread.join(timeout=30)
    assert ended.results == [], "the paused queue rendered nothing"


def test_a_preview_the_model_cannot_render_says_why(project: Path, untrained_demo_model: Path) -> None:
    previews = Previews()
    with Project.open(project) as opened:
        worker = QueueWorker(
            opened,
            lambda _id: load_demo_model(untrained_demo_model / "missing"),
            Ended(),
            on_preview=previews,
        )
        thread = serve(worker)
        try:
            worker.request_preview(1, preview_request())
            failed = previews.wait_for(1)
        finally:
            worker.stop()
            thread.join(timeout=30)
    assert failed.image is None and failed.error
