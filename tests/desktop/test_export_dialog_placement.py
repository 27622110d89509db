"""The export dialog's placement choices (which renders, labels, split by scene) reach the export, and its
report of what was left out is shown when the export is done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]
from pytestqt.qtbot import QtBot

from desktop.export_dialog import ExportDialog
from desktop.store import ProjectStore
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.export import SplitRatios
from projects.scenes import SceneLayout
from tests.projects.export_scenes import add_rendered_scene

INSTANCES = (InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),)


@pytest.fixture
def dialog(qtbot: QtBot, tmp_path: Path) -> Iterator[ExportDialog]:
    """A dialog on a project with three placed scenes and one whose render was never checked."""
    path = tmp_path / "p.instproj"
    with Project.create(path, name="p") as project:
        ids = [add_rendered_scene(project, SceneLayout(f"s{k}", "s", 64, 64, INSTANCES, seed=k))[0] for k in range(3)]
        ids.append(add_rendered_scene(project, SceneLayout("raw", "r", 64, 64, INSTANCES, seed=9), placement=None)[0])
    store = ProjectStore()
    with qtbot.waitSignal(store.opened, timeout=10_000):
        store.open(path)
    dialog = ExportDialog(store, ids, [])
    qtbot.addWidget(dialog)
    yield dialog
    store.close()


def choose(dialog: ExportDialog, fmt: str) -> None:
    dialog.format.setCurrentIndex(dialog.format.findData(fmt))


def test_renders_follow_the_format_until_chosen_and_dataset_choices_are_off_for_images(dialog: ExportDialog) -> None:
    assert dialog.include.currentData() == "everything" and not dialog.labels.isEnabled()  # images first
    assert not dialog.split.isEnabled()
    choose(dialog, "coco")
    assert dialog.include.currentData() == "placed" and dialog.labels.isEnabled() and dialog.split.isEnabled()
    assert not dialog.split_row.isEnabled()
    dialog.include.setCurrentIndex(dialog.include.findData("best"))
    dialog.include.activated.emit(dialog.include.currentIndex())  # what a user's pick sends
    choose(dialog, "images")
    assert dialog.include.currentData() == "best"  # the user's pick stays


def test_the_dialogs_choices_reach_the_export_options(dialog: ExportDialog) -> None:
    choose(dialog, "yolo")
    dialog.labels.setCurrentIndex(dialog.labels.findData("found"))
    dialog.split.setChecked(True)
    assert dialog.split_row.isEnabled()
    for box, value in zip(dialog.split_ratios, (0.6, 0.4, 0.0), strict=True):
        box.setValue(value)
    dialog.split_seed.setValue(42)
    options = dialog.options()
    assert (options.include, options.labels, options.split, options.split_seed) == (
        "placed",
        "found",
        SplitRatios(0.6, 0.4, 0.0),
        42,
    )
    choose(dialog, "images")  # labels and splits are for datasets only
    options = dialog.options()
    assert (options.labels, options.split) == ("drawn", None)


def test_ratios_that_are_not_a_split_are_said_in_the_dialog(dialog: ExportDialog, tmp_path: Path) -> None:
    choose(dialog, "yolo")
    dialog.split.setChecked(True)
    dialog.split_ratios[1].setValue(0.7)  # 0.8 + 0.7 + 0.1
    dialog.out.setText(str(tmp_path / "out"))
    dialog.start()
    assert "must add up to 1" in dialog.status.text() and not dialog.is_exporting()
    assert not (tmp_path / "out").exists()


def test_a_split_export_shows_what_it_left_out(qtbot: QtBot, dialog: ExportDialog, tmp_path: Path) -> None:
    choose(dialog, "yolo")
    dialog.split.setChecked(True)
    for box, value in zip(dialog.split_ratios, (0.67, 0.33, 0.0), strict=True):
        box.setValue(value)
    out = tmp_path / "yolo"
    dialog.out.setText(str(out))
    dialog.export_button.click()
    assert dialog.wait()
    qtbot.waitUntil(lambda: dialog.report is not None or dialog.error is not None, timeout=10_000)
    assert dialog.report is not None and dialog.report.images == 3
    text = dialog.status.text()
    assert "Splits: train 2, val 1." in text and "1 render(s) (1 instance(s)) left out: not checked." in text
    data = yaml.safe_load((out / "data.yaml").read_text(encoding="utf-8"))
    assert (data["train"], data["val"]) == ("images/train", "images/val")
