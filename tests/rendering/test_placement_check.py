"""The placement check of each render in the queue loop: the stored report, re-rolls, a failing checker."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from sqlalchemy import select

from engine.placement_report import InstancePlacement, PlacementReport, PlacementThresholds
from engine.providers import load_demo_model
from engine.request import RenderRequest
from engine.runner import LoadedModel, Runner
from projects.database import Project
from projects.models import JobStatus, Render
from projects.placement import set_placement_thresholds
from projects.queue import list_jobs
from projects.scenes import find_scene, queue_scene
from rendering.outcomes import JobResult, Outcome
from rendering.placement_check import PlacementCheck
from rendering.queue_loop import QueueLoop
from rendering.worker import QueueWorker
from tests.cli.test_render import shapes_project
from tests.rendering.test_queue_loop import Recorder


class FixedChecker:
    """Reports every instance found with this overlap (full label score); counts what it was asked."""

    name = "fixed"

    def __init__(self, iou: float) -> None:
        self.iou = iou
        self.seen: list[tuple[tuple[int, ...], int, PlacementThresholds]] = []

    def check(
        self, image: npt.NDArray[np.uint8], request: RenderRequest, thresholds: PlacementThresholds
    ) -> PlacementReport:
        self.seen.append((image.shape, request.seed, thresholds))
        found = tuple(InstancePlacement(True, self.iou, 1.0, (0.1, 0.1, 0.5, 0.5)) for _ in request.instances)
        return PlacementReport(self.name, found, thresholds)


class BrokenChecker:
    name = "broken"

    def check(
        self, image: npt.NDArray[np.uint8], request: RenderRequest, thresholds: PlacementThresholds
    ) -> PlacementReport:
        raise RuntimeError("the detector ran out of patience")


@pytest.fixture(scope="module")
def demo(untrained_demo_model: Path) -> LoadedModel:
    """Loaded once for the module: these tests are about the check, not the loading."""
    return load_demo_model(untrained_demo_model)


def loop_for(project: Project, model: LoadedModel, check: PlacementCheck | None = None) -> QueueLoop:
    return QueueLoop(project, Runner(lambda _id: model), Recorder(), placement=check)


def stored(project: Project) -> list[Render]:
    with project.read() as session:
        renders = list(session.scalars(select(Render).order_by(Render.id)))
        session.expunge_all()
    return renders


def test_a_demo_render_is_checked_by_the_shape_world_checker_and_the_report_stored(
    tmp_path: Path, demo: LoadedModel
) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    with Project.open(path) as project:
        with project.write() as session:
            queue_scene(session, find_scene(session, "s0"))
            set_placement_thresholds(session, PlacementThresholds(iou=0.6, score=0.3))
        (result,) = loop_for(project, demo).run_until_empty()
        (render,) = stored(project)
    assert result.outcome is Outcome.DONE and result.placement is not None
    assert render.placement == result.placement.to_dict()
    assert render.placement["checker"] == "shape-world" and len(render.placement["instances"]) == 1
    assert render.placement["thresholds"] == {"iou": 0.6, "score": 0.3}, "read from the project at the claim"
    assert result.placement_summary in ("all placed", "1 of 1 missed") and result.rerolled is None
    assert render.reroll_group is None


def test_until_placed_rerolls_a_miss_with_the_next_seed_until_its_seeds_are_spent(
    tmp_path: Path, demo: LoadedModel
) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=2, steps=2)
    checker = FixedChecker(iou=0.3)  # found, but off its box: a miss by the default thresholds
    with Project.open(path) as project:
        with project.write() as session:
            first = queue_scene(session, find_scene(session, "s0"), until_placed=2)
            other = queue_scene(session, find_scene(session, "s1"))
        results = loop_for(project, demo, PlacementCheck(lambda _id: checker)).run_until_empty()
        with project.read() as session:
            jobs = list_jobs(session)
        renders = stored(project)
    # The re-roll runs before the job queued behind the chain, with the next seed, and the chain then stops.
    assert [r.job.id for r in results] == [first.id, first.id + 2, other.id]
    retry = results[0].rerolled
    assert retry is not None and retry.request.seed == first.request.seed + 1 and retry.reroll_of == first.id
    assert results[1].rerolled is None and results[2].rerolled is None
    assert [r.placement_words() for r in results] == [
        f"1 of 1 missed -> seed {first.request.seed + 1} queued",
        "1 of 1 missed, all 2 seeds tried",
        "1 of 1 missed",
    ]
    assert len(jobs) == 3 and all(job.status is JobStatus.DONE for job in jobs)
    assert [(r.seed, r.reroll_group) for r in renders] == [(0, first.id), (1, first.id), (1, None)]
    assert [seed for _shape, seed, _t in checker.seen] == [0, 1, 1]
    assert checker.seen[0][0] == (64, 64, 3), "the image as the model rendered it"


def test_a_placed_render_or_looser_thresholds_end_the_chain_at_once(tmp_path: Path, demo: LoadedModel) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    checker = FixedChecker(iou=0.3)
    with Project.open(path) as project:
        with project.write() as session:
            queue_scene(session, find_scene(session, "s0"), until_placed=5)
            set_placement_thresholds(session, PlacementThresholds(iou=0.25))
        (result,) = loop_for(project, demo, PlacementCheck(lambda _id: checker)).run_until_empty()
    assert result.placement_words() == "all placed" and result.rerolled is None


def test_a_failing_checker_still_stores_the_render_unchecked_and_says_why(
    tmp_path: Path, demo: LoadedModel, caplog: pytest.LogCaptureFixture
) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=2, steps=2)
    selections: list[str] = []

    def select(model_id: str) -> BrokenChecker | None:
        selections.append(model_id)
        if len(selections) == 1:
            raise FileNotFoundError("the checker folder /nowhere is missing")
        return BrokenChecker()

    with Project.open(path) as project:
        with project.write() as session:
            for name in ("s0", "s1"):
                queue_scene(session, find_scene(session, name), until_placed=3)
        results = loop_for(project, demo, PlacementCheck(select)).run_until_empty()
        renders = stored(project)
    assert [r.outcome for r in results] == [Outcome.DONE, Outcome.DONE] and len(renders) == 2
    assert [r.placement for r in renders] == [None, None] and all(r.rerolled is None for r in results)
    assert results[0].notes == ("placement not checked: the checker folder /nowhere is missing",)
    assert results[1].notes == ("placement not checked: the detector ran out of patience",)
    assert renders[1].timings["notes"] == ["placement not checked: the detector ran out of patience"]
    assert all(r.placement_words() is None for r in results)
    assert selections == ["demo", "demo"], "a checker is chosen for each render: a folder set meanwhile is used"
    assert "the placement check of a demo render failed" in caplog.text


def test_a_model_without_a_checker_renders_unchecked(tmp_path: Path, demo: LoadedModel) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    with Project.open(path) as project:
        with project.write() as session:
            queue_scene(session, find_scene(session, "s0"), until_placed=2)
        (result,) = loop_for(project, demo, PlacementCheck(lambda _id: None)).run_until_empty()
        (render,) = stored(project)
    assert result.outcome is Outcome.DONE and result.notes == () and result.placement_words() is None
    assert render.placement is None and render.reroll_group is not None


def test_the_gui_s_worker_checks_with_the_selection_it_was_given(tmp_path: Path, demo: LoadedModel) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    ended = threading.Event()
    results: list[JobResult] = []

    class Listener(Recorder):
        def job_ended(self, result: JobResult) -> None:
            results.append(result)
            ended.set()

    with Project.open(path) as project:
        with project.write() as session:
            queue_scene(session, find_scene(session, "s0"))
        worker = QueueWorker(project, lambda _id: demo, Listener(), select_checker=lambda _id: FixedChecker(iou=0.9))
        thread = threading.Thread(target=worker.serve, name="test-render-worker", daemon=True)
        thread.start()
        assert ended.wait(timeout=60)
        worker.stop()
        thread.join(timeout=30)
        (render,) = stored(project)
    assert results[0].placement_words() == "all placed"
    assert render.placement is not None and render.placement["checker"] == "fixed"
