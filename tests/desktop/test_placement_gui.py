"""Placement checks in the window: the history strip's badges and star, the missed instances outlined on the
canvas, the thresholds they are judged by, and the "until placed" job option. Renders are stored with their
placement dicts directly (no model renders here: the queue is paused before anything is queued)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot
from sqlalchemy import select

import engine.runner  # noqa: F401  (torch loads here once, not in the render thread as the window closes)
from desktop.canvas.missed_outlines import MissedOutline
from desktop.main_window import MainWindow
from desktop.panels.history import BADGE_ROLE, STAR_ROLE
from desktop.placement_badges import ALL_MISSED_COLOR, PLACED_COLOR, SOME_MISSED_COLOR, badge
from desktop.sweep import SweepDialog
from desktop.until_placed import UntilPlacedOption
from engine.model_settings import ModelSettings
from engine.placement_report import InstancePlacement, PlacementReport, PlacementThresholds
from projects.database import Project
from projects.models import Render, RenderJob
from projects.placement import placement_thresholds
from projects.scene_settings import SceneSettings
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


def test_thresholds_are_stored_and_the_history_is_judged_again(
    qtbot: QtBot, checked: tuple[MainWindow, list[int]]
) -> None:
    window, ids = checked
    window.history_control.show_render(ids[1])  # all placed at 0.5 / 0.2
    qtbot.waitUntil(lambda: window.canvas.missed_render == ids[1], timeout=10_000)
    assert window.canvas.missed_shown == ()

    dialog = window.history_control.edit_thresholds()
    assert dialog is not None
    qtbot.waitUntil(dialog.iou.isEnabled, timeout=10_000)  # the project's values arrived from the store
    assert (dialog.iou.value(), dialog.score.value()) == (0.5, 0.2)
    dialog.iou.setValue(1.5)  # the spin boxes keep to 0..1
    dialog.score.setValue(-0.3)
    assert (dialog.iou.value(), dialog.score.value()) == (1.0, 0.0)
    dialog.iou.setValue(0.7)
    dialog.score.setValue(0.25)
    assert window.store is not None
    with qtbot.waitSignal(window.store.thresholdsChanged, timeout=10_000):
        dialog.accept()
    qtbot.waitUntil(lambda: item_data(window, BADGE_ROLE)[2] == "1 missed", timeout=10_000)
    with window.store.project_for_reading().read() as session:
        assert placement_thresholds(session) == PlacementThresholds(iou=0.7, score=0.25)
    # The render still shown is judged again too: its third instance (IoU 0.6) is outlined now.
    qtbot.waitUntil(lambda: [o.slot for o in window.canvas.missed_shown] == [2], timeout=10_000)
    assert "IoU ≥ 0.7, label score ≥ 0.25" in window.history.list.item(2).toolTip()


def test_the_thresholds_dialog_restores_the_defaults(qtbot: QtBot, window: MainWindow) -> None:
    dialog = window.history_control.edit_thresholds()
    assert dialog is not None
    qtbot.waitUntil(dialog.iou.isEnabled, timeout=10_000)
    dialog.iou.setValue(0.9)
    dialog.buttons.button(dialog.buttons.StandardButton.RestoreDefaults).click()
    assert dialog.thresholds() == PlacementThresholds()
    dialog.reject()


def queued_until_placed(window: MainWindow) -> list[int]:
    assert window.store is not None
    with window.store.project_for_reading().read() as session:
        return list(session.scalars(select(RenderJob.until_placed).order_by(RenderJob.id)))


def test_until_placed_reaches_the_job_and_is_remembered(qtbot: QtBot, window: MainWindow) -> None:
    window.queue.set_paused(True)  # what is queued stays queued
    option = window.commands.until_placed
    assert option.isVisible() and option.check.isEnabled()  # the demo model always has its checker
    assert not option.count.isEnabled()  # off until ticked
    option.check.setChecked(True)
    option.count.setValue(5)
    assert window.store is not None
    with qtbot.waitSignal(window.store.jobsQueued, timeout=10_000):
        window.commands.render.trigger()
    option.check.setChecked(False)
    with qtbot.waitSignal(window.store.jobsQueued, timeout=10_000):
        window.commands.render.trigger()
    assert queued_until_placed(window) == [5, 0]
    option.check.setChecked(True)
    option.count.setValue(500)  # the spin box keeps to 2..100
    again = UntilPlacedOption(window.settings)
    assert again.check.isChecked() and again.count.value() == 100


def test_a_sweep_can_re_roll_until_placed(qtbot: QtBot, window: MainWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    window.queue.set_paused(True)

    def accept(dialog: SweepDialog) -> QDialog.DialogCode:
        option = dialog.findChild(UntilPlacedOption)
        assert option is not None
        option.check.setChecked(True)
        option.count.setValue(3)
        assert dialog.summary.text() == "8 renders, up to 24 with re-rolls"
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(SweepDialog, "exec", accept)
    assert window.store is not None
    with qtbot.waitSignal(window.store.jobsQueued, timeout=10_000):
        window.session.render_sweep()
    assert queued_until_placed(window) == [3] * 8  # 2 seeds x 2 alphas x 2 mis values, each its own chain
    assert window.commands.until_placed.seeds() == 0  # the sweep remembers its own choice
    assert window.settings.value("sweepUntilPlaced/seeds", type=int) == 3


def test_without_a_checker_the_option_is_offered_once_one_is_set(tmp_path: Path, window: MainWindow) -> None:
    option = window.commands.until_placed
    option.check.setChecked(True)
    editor = window.editor
    assert editor is not None
    editor.set_fields("Model", settings=SceneSettings(model_id="sd15"))
    assert not option.check.isEnabled() and not option.count.isEnabled()
    assert "checker folder" in option.check.toolTip() and option.seeds() == 0
    ModelSettings(checker=tmp_path / "owlv2").save(window.model_settings_path)
    option.recheck()  # what closing File → Model files… does
    assert option.check.isEnabled() and option.seeds() == option.count.value()
    editor.undo_stack.undo()  # back to the demo model
    assert option.check.isEnabled()


def test_a_broken_model_settings_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text("{ not json", encoding="utf-8")
    from desktop.until_placed import missing_checker

    why = missing_checker("sd15", path)
    assert why is not None and "cannot be read" in why
    assert missing_checker("demo", path) is None
    assert missing_checker("sd15", tmp_path / "absent.json") is not None  # no settings: no checker


def test_the_option_greys_out_with_its_reason(qtbot: QtBot, tmp_path: Path) -> None:
    option = UntilPlacedOption(QSettings(str(tmp_path / "g.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(option)
    option.check.setChecked(True)
    assert option.seeds() == 4  # the default count
    option.set_missing_checker("no checker here")
    assert option.seeds() == 0 and option.toolTip() == "no checker here"
