"""Placement checks in the window: the history strip's badges and star, the missed instances outlined on the
canvas, judged by the project's thresholds. Renders are stored with their placement dicts directly (no model)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.canvas.missed_outlines import MissedOutline
from desktop.main_window import MainWindow
from desktop.panels.history import BADGE_ROLE, STAR_ROLE
from desktop.placement_badges import ALL_MISSED_COLOR, PLACED_COLOR, SOME_MISSED_COLOR, badge
from engine.placement_report import InstancePlacement, PlacementReport, PlacementThresholds
from projects.database import Project
from projects.models import Render
from projects.scenes import find_scene, scene_to_request
from tests.desktop.conftest import make_project, open_window

CAPTIONS = ("thing 0", "thing 1", "thing 2")


def png(color: str = "#556677") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), color).save(buffer, format="PNG")
    return buffer.getvalue()


def report(*instances: InstancePlacement) -> dict[str, Any]:
    return PlacementReport("shape-world", instances).to_dict()


PLACED = InstancePlacement(True, 0.9, 0.9, (0.1, 0.1, 0.3, 0.3))
ELSEWHERE = InstancePlacement(True, 0.1, 0.8, (0.6, 0.6, 0.9, 0.9))  # found, but not where it was asked
NOT_FOUND = InstancePlacement(False)
WEAK = InstancePlacement(True, 0.6, 0.3, (0.3, 0.1, 0.5, 0.3))  # placed at 0.5/0.2, missed at IoU 0.7


def add_renders(path: Path, placements: Sequence[tuple[dict[str, Any] | None, int | None]]) -> list[int]:
    """Store renders of scene 1 in order (oldest first), each with its placement and re-roll group."""
    ids = []
    with Project.open(path) as project, project.write() as session:
        scene = find_scene(session, "scene 1")
        request = scene_to_request(session, scene)
        for seed, (placement, group) in enumerate(placements):
            render = Render(
                scene_id=scene.id,
                png=png(),
                thumbnail=png(),
                request_json=request.to_json(),
                seed=seed,
                width=64,
                height=64,
                placement=placement,
                reroll_group=group,
            )
            session.add(render)
            session.flush()
            ids.append(render.id)
    return ids


@pytest.fixture
def checked(qtbot: QtBot, tmp_path: Path) -> Iterator[tuple[MainWindow, list[int]]]:
    """A scene of three instances with four renders, newest first in the strip: a chain of three (the middle
    one all placed), then a render nobody checked."""
    path = make_project(tmp_path / "p.instproj", scenes=1, instances=3)
    ids = add_renders(
        path,
        [
            (report(PLACED, ELSEWHERE, NOT_FOUND), 7),
            (report(PLACED, PLACED, WEAK), 7),
            (report(ELSEWHERE, NOT_FOUND, NOT_FOUND), 7),
            (None, None),
        ],
    )
    (tmp_path / "home").mkdir()
    window = open_window(qtbot, path, tmp_path / "home")
    qtbot.waitUntil(lambda: window.history.list.count() == 4, timeout=10_000)
    yield window, ids
    window.close()


def item_data(window: MainWindow, role: int) -> list[Any]:
    items = [window.history.list.item(row) for row in range(window.history.list.count())]
    return [item.data(role) for item in items]


def test_each_thumbnail_says_whether_its_render_placed_everything(checked: tuple[MainWindow, list[int]]) -> None:
    window, ids = checked
    assert item_data(window, Qt.ItemDataRole.UserRole) == ids[::-1]
    assert item_data(window, BADGE_ROLE) == [None, "3 missed", "all placed", "2 missed"]
    assert [getattr(badge(e), "color", None) for e in window.history.entries] == [
        None,
        ALL_MISSED_COLOR,
        PLACED_COLOR,
        SOME_MISSED_COLOR,
    ]
    tip = window.history.list.item(3).toolTip()
    assert "2 of 3 missed" in tip
    assert "#2 “thing 1”: IoU 0.10, score 0.80" in tip and "#3 “thing 2”: not found" in tip
    assert "thing 0" not in tip.split("missed", 1)[1]  # the placed one is not listed
    assert "Placement" not in window.history.list.item(0).toolTip()  # not checked: nothing said


def test_the_best_render_of_a_re_roll_chain_gets_the_star(checked: tuple[MainWindow, list[int]]) -> None:
    window, ids = checked
    starred = [
        rid
        for rid, star in zip(item_data(window, Qt.ItemDataRole.UserRole), item_data(window, STAR_ROLE), strict=True)
        if star
    ]
    assert starred == [ids[1]]  # the chain's all-placed render, not the latest of the chain
    assert "★ the best render" in window.history.list.item(2).toolTip()


def test_the_missed_instances_are_outlined_until_the_scene_is_edited(
    qtbot: QtBot, checked: tuple[MainWindow, list[int]]
) -> None:
    window, ids = checked
    canvas = window.canvas
    # The latest render (not checked) is under the instances when the scene opens: nothing to outline.
    qtbot.waitUntil(lambda: canvas.missed_render == ids[-1], timeout=10_000)
    assert canvas.missed_shown == () and canvas.missed_legend.isHidden()

    window.history_control.show_render(ids[0])
    qtbot.waitUntil(lambda: canvas.missed_render == ids[0], timeout=10_000)
    shown: tuple[MissedOutline, ...] = canvas.missed_shown
    assert [(o.slot, o.found_box) for o in shown] == [(1, ELSEWHERE.box), (2, None)]
    assert canvas.missed_legend.isVisible() and "“thing 1”" in canvas.missed_legend.text()
    outlines = [item for item in canvas.scene().items() if item.toolTip().startswith(("Missed", "Found"))]
    assert len(outlines) == 3  # two asked-for outlines, one box where the checker found "thing 1"

    editor = window.editor
    assert editor is not None
    editor.set_selection([editor.scene.instances[0].uid])
    editor.delete_selected()
    assert canvas.missed_render is None and canvas.missed_shown == () and canvas.missed_legend.isHidden()
    assert not [item for item in canvas.scene().items() if item.toolTip().startswith("Missed")]


def test_no_render_shown_means_no_outlines(qtbot: QtBot, checked: tuple[MainWindow, list[int]]) -> None:
    window, ids = checked
    window.history_control.show_render(ids[2])
    qtbot.waitUntil(lambda: len(window.canvas.missed_shown) == 3, timeout=10_000)
    window.canvas.set_background(None)
    assert window.canvas.missed_shown == () and window.canvas.missed_render is None


def test_a_render_judged_by_stricter_thresholds(checked: tuple[MainWindow, list[int]]) -> None:
    window, _ids = checked
    entry = window.history.entries[2]  # placed by 0.5/0.2; its third instance has IoU 0.6
    stricter = PlacementThresholds(iou=0.7)
    judged = type(entry)(entry.render_id, entry.thumbnail, entry.request, entry.created, entry.placement, stricter)
    assert badge(judged) is not None and badge(judged).text == "1 missed"  # type: ignore[union-attr]
