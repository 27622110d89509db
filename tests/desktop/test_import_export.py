"""Getting scenes in by menu or drop, and renders out through the export dialog (a background task)."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDialogButtonBox
from pytestqt.qtbot import QtBot

from desktop.background import active_tasks
from desktop.export_dialog import CANCELLED_MESSAGE, ExportDialog
from desktop.main_window import MainWindow
from projects.database import Project
from tests.cli.test_export_import import rendered_project
from tests.conftest import OFFICIAL_DEMOS
from tests.desktop.conftest import open_window


def drop(window: MainWindow, paths: list[Path]) -> None:
    """What Qt does on a drop: the window's drag-enter handler, then its drop handler. (Qt routes a drop
    through its drag manager, which a synthetic event cannot go through, so the handlers are called.)"""
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    buttons, keys = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(QPoint(5, 5), Qt.DropAction.CopyAction, data, buttons, keys)
    enter.ignore()
    window.dragEnterEvent(enter)
    assert enter.isAccepted(), "the window takes the files"
    event = QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, data, buttons, keys)
    window.dropEvent(event)


def test_dropping_official_json_and_an_exported_png_adds_scenes(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    source = rendered_project(tmp_path / "src.instproj")
    import main

    assert main.main(["export", str(source), str(tmp_path / "png"), "--scenes", "cats"]) == 0
    png = next((tmp_path / "png").glob("*.png"))
    demo = tmp_path / "cat_dog.json"
    shutil.copy(OFFICIAL_DEMOS / "demo_cat_dog_robin.json", demo)
    before = window.scene_list.model.rowCount()
    with qtbot.waitSignal(window.store.imported, timeout=10_000) as done:  # type: ignore[union-attr]
        drop(window, [demo, png])
    assert done.args[0] == 2
    qtbot.waitUntil(lambda: window.scene_list.model.rowCount() == before + 2, timeout=10_000)
    names = [s.name for s in window.scene_list.model.scenes]
    assert "cat_dog" in names


def test_a_bad_file_imports_nothing_and_says_which(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    shutil.copy(OFFICIAL_DEMOS / "demo_cat_dog_robin.json", good)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hello": "world"}))
    before = window.scene_list.model.rowCount()
    failures: list[str] = []
    window.store.failed.connect(failures.append)  # type: ignore[union-attr]
    with qtbot.waitSignal(window.store.importFailed, timeout=10_000) as refused:  # type: ignore[union-attr]
        drop(window, [good, bad])
    assert "bad.json" in refused.args[0]
    message = window.statusBar().currentMessage()
    assert message.startswith("Not imported: ") and "bad.json" in message  # not "Not saved"
    assert window.scene_list.model.rowCount() == before and failures == []


def export_dialog_on(qtbot: QtBot, tmp_path: Path, fmt: str, out: Path) -> tuple[MainWindow, ExportDialog]:
    """A window on a project with two rendered scenes, and its export dialog set to write both as `fmt` to `out`."""
    path = rendered_project(tmp_path / "p.instproj")
    (tmp_path / "home").mkdir()
    window = open_window(qtbot, path, tmp_path / "home")
    assert window.store is not None
    ids = [s.scene_id for s in window.scene_list.model.scenes]
    dialog = ExportDialog(window.store, ids, [], window)
    qtbot.addWidget(dialog)
    dialog.format.setCurrentIndex(dialog.format.findData(fmt))
    dialog.out.setText(str(out))
    return window, dialog


def test_the_export_dialog_writes_a_coco_dataset_and_reports_a_folder_in_the_way(qtbot: QtBot, tmp_path: Path) -> None:
    window, dialog = export_dialog_on(qtbot, tmp_path, "coco", tmp_path / "coco")
    dialog.export_button.click()
    assert dialog.wait()
    qtbot.waitUntil(lambda: dialog.report is not None, timeout=10_000)
    assert dialog.report is not None and dialog.report.images == 2
    assert (tmp_path / "coco" / "annotations.json").exists()

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    dialog.out.setText(str(tmp_path / "busy"))
    dialog.export_button.click()
    assert dialog.wait()
    qtbot.waitUntil(lambda: dialog.error is not None, timeout=10_000)
    assert "⚠" in dialog.status.text()
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
    window.close()


@pytest.fixture
def held_export(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The exporter's first image read waits until the returned event is set (set at the end regardless)."""
    from projects.export_source import RenderData, RenderRef, load_render

    gate = threading.Event()
    first = [True]

    def held(project: Project, ref: RenderRef) -> RenderData:
        if first[0]:
            first[0] = False
            gate.wait(10)
        return load_render(project, ref)

    monkeypatch.setattr("projects.export.load_render", held)
    yield gate
    gate.set()


def exporting_dialog(qtbot: QtBot, tmp_path: Path, out: Path) -> tuple[MainWindow, ExportDialog]:
    window, dialog = export_dialog_on(qtbot, tmp_path, "yolo", out)
    dialog.export_button.click()
    assert dialog.is_exporting() and active_tasks(window)
    return window, dialog


def test_cancel_stops_the_export_and_leaves_nothing_behind(
    qtbot: QtBot, tmp_path: Path, held_export: threading.Event
) -> None:
    out = tmp_path / "yolo"
    window, dialog = exporting_dialog(qtbot, tmp_path, out)
    dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()  # asks the export to stop
    assert dialog.status.text() == "Cancelling…"
    held_export.set()
    qtbot.waitUntil(lambda: dialog.error is not None, timeout=10_000)
    assert dialog.error == CANCELLED_MESSAGE and dialog.report is None
    assert not out.exists()
    assert dialog.export_button.isEnabled() and not dialog.is_exporting()
    window.close()


def test_closing_the_dialog_cancels_the_export(qtbot: QtBot, tmp_path: Path, held_export: threading.Event) -> None:
    out = tmp_path / "yolo"
    window, dialog = exporting_dialog(qtbot, tmp_path, out)
    (task,) = active_tasks(dialog)
    dialog.reject()  # Escape, or the title bar's close button
    assert task.cancelled and not dialog.is_exporting()
    held_export.set()
    assert task.wait(10)
    qtbot.wait(50)
    assert dialog.error is None and dialog.report is None  # nothing is reported to a closed dialog
    assert not out.exists()
    window.close()


def export_dialogs(window: MainWindow) -> list[ExportDialog]:
    return [dialog for dialog in window.findChildren(ExportDialog) if dialog.isVisible()]


def test_a_second_ctrl_e_brings_the_open_export_dialog_forward(qtbot: QtBot, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    window = open_window(qtbot, rendered_project(tmp_path / "p.instproj"), tmp_path / "home")
    window.activateWindow()
    window.canvas.setFocus()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    qtbot.keyClick(window.canvas, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: len(export_dialogs(window)) == 1)
    (dialog,) = export_dialogs(window)
    assert dialog.isModal() and dialog.windowModality() is Qt.WindowModality.WindowModal
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog)

    # Ctrl+E again: where the keyboard is now (the dialog), on the window behind it, and from the menu.
    qtbot.keyClick(QApplication.focusWidget() or dialog, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window.canvas, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    window.commands.export.trigger()
    qtbot.wait(50)
    assert export_dialogs(window) == [dialog]
    assert QApplication.activeWindow() is dialog

    dialog.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()  # closes it: nothing is exporting
    qtbot.waitUntil(lambda: not export_dialogs(window))
    window.commands.export.trigger()
    qtbot.waitUntil(lambda: len(export_dialogs(window)) == 1)
    assert export_dialogs(window)[0] is not dialog
    window.close()
