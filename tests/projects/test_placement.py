"""The project's placement thresholds and the stored placement reports (projects.placement)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from engine.placement_report import InstancePlacement, PlacementDataError, PlacementReport, PlacementThresholds
from engine.request import RenderRequest
from projects import queue, schema
from projects.database import Project
from projects.models import Render
from projects.placement import (
    best_render,
    placement_thresholds,
    render_report,
    set_placement_thresholds,
    stored_report,
)
from projects.queue import RenderOutput
from projects.scenes import SceneLayout, add_scene, get_settings, queue_scene, queue_sweep

FIXTURE = Path(__file__).with_name("data") / "schema_0001.instproj"


def report(*instances: tuple[bool, float, float]) -> dict[str, Any]:
    placements = tuple(InstancePlacement(found, iou, score) for found, iou, score in instances)
    return PlacementReport("shape-world", placements).to_dict()


def test_thresholds_default_then_persist_across_opens(project_path: Path) -> None:
    with Project.create(project_path) as project:
        with project.read() as session:
            assert placement_thresholds(session) == PlacementThresholds(0.5, 0.2)
        with project.write() as session:
            set_placement_thresholds(session, PlacementThresholds(iou=0.7, score=0.35))
    with Project.open(project_path) as project, project.read() as session:
        assert placement_thresholds(session) == PlacementThresholds(0.7, 0.35)


def test_thresholds_out_of_range_are_refused_and_a_bad_stored_pair_reads_as_the_defaults(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(PlacementDataError, match=r"iou threshold must be between 0 and 1, not 1\.5"):
        PlacementThresholds(iou=1.5)
    with project.write() as session:
        get_settings(session).placement_score = 7.0  # a file edited by hand
    with project.read() as session, caplog.at_level(logging.WARNING, logger="projects.placement"):
        assert placement_thresholds(session) == PlacementThresholds()
    assert "placement thresholds are not valid" in caplog.text


def test_a_project_from_before_placement_checks_gets_the_default_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "third.instproj"
    shutil.copy(FIXTURE, path)
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            schema.upgrade(connection, "0003")
    finally:
        engine.dispose()
    with Project.open(path) as project:
        assert project.report.migrated_from == "0003"
        with project.read() as session:
            settings = get_settings(session)
            assert (settings.placement_iou, settings.placement_score) == (0.5, 0.2)
            assert all(render.placement is None for render in session.scalars(select(Render)))
            jobs = queue.list_jobs(session)
    assert jobs and all(job.until_placed == 0 and job.reroll_of is None for job in jobs)


@pytest.mark.parametrize(
    "garbage",
    [
        "all placed",
        [1, 2],
        {"checker": 3, "instances": []},
        {"checker": "x", "instances": "none"},
        {"checker": "x", "instances": [{"found": True, "iou": "high"}]},
        {"checker": "x", "instances": [{"found": True, "box": [0, 1]}]},
        {"checker": "x", "instances": [], "thresholds": [0.5]},
    ],
)
def test_an_unreadable_stored_report_reads_as_not_checked(garbage: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="projects.placement"):
        assert stored_report(garbage, 12) is None
    assert "render 12: its placement record is unreadable" in caplog.text


def test_a_stored_report_round_trips_and_none_is_not_checked() -> None:
    data = report((True, 0.8, 1.0), (False, 0.0, 0.0))
    loaded = stored_report(data)
    assert loaded is not None and loaded.summary() == "1 of 2 missed" and loaded.missed() == (1,)
    assert stored_report(None) is None


def test_best_render_prefers_all_placed_then_most_placed_then_overlap_then_the_latest(project: Project) -> None:
    thresholds = PlacementThresholds()
    placements: list[dict[str, Any] | None] = [
        None,  # not checked: never the best
        report((True, 0.9, 1.0), (False, 0.0, 0.0)),  # one placed, high overlap
        report((True, 0.6, 1.0), (True, 0.55, 1.0)),  # all placed
        report((True, 0.7, 1.0), (True, 0.6, 1.0)),  # all placed, higher mean overlap: the best
        report((True, 0.95, 1.0), (True, 0.95, 0.1)),  # the best overlap, but one label missed
        report((True, 0.7, 1.0), (True, 0.6, 1.0)),  # as good as the fourth, and later: the best
    ]
    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "a scene", 64, 64))
        for placement in placements:
            job = queue.enqueue(session, RenderRequest(prompt="p", width=64, height=64), scene.id)
            queue.claim_next(session)
            output = RenderOutput(png=b"png", thumbnail=b"t", timings={}, model_hashes={}, placement=placement)
            queue.finish(session, job.id, output)
        renders = list(session.scalars(select(Render).order_by(Render.id)))
        assert best_render(renders, thresholds) is renders[5]
        assert best_render(renders[:5], thresholds) is renders[3]
        assert best_render(renders[:3], thresholds) is renders[2]
        assert best_render(renders[:2], thresholds) is renders[1]
        assert render_report(renders[0]) is None and render_report(renders[4]) is not None
        # Judged by the current thresholds: with no label score required, the fifth places both best.
        assert best_render(renders, PlacementThresholds(score=0.0)) is renders[4]
        assert best_render(renders[:1], thresholds) is None and best_render([], thresholds) is None


def test_queue_scene_and_sweep_queue_re_roll_chains(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "a scene", 64, 64))
        single = queue_scene(session, scene, until_placed=4)
        sweep = queue_sweep(session, scene, [1, 2], [0.8], [0.3], until_placed=3)
        plain = queue_scene(session, scene)
    assert single.until_placed == 4 and single.reroll_group == single.id
    assert [job.until_placed for job in sweep] == [3, 3] and [job.reroll_group for job in sweep] == [
        j.id for j in sweep
    ]
    assert plain.until_placed == 0 and plain.reroll_group is None
