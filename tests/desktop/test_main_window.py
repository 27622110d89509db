"""The whole window on a real project file: edits reach the file, survive reopening, and follow the scene
that is open; every check reads the project file itself."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.qtbot import QtBot

from desktop.canvas.tools import Tool
from desktop.help import ShortcutsDialog
from desktop.main_window import MainWindow
from desktop.theme import apply_theme
from projects.scene_settings import SceneSettings
from tests.cli.test_export_import import rendered_project
from tests.desktop.conftest import drag, make_project, open_window


def stored(window: MainWindow, scene_id: int | None = None) -> list[tuple[str, str, dict[str, object]]]:
    """The scene's instance rows as the file has them (after the store has written everything)."""
    assert window.store is not None and window.store.flush()
    scene_id = scene_id if scene_id is not None else window.editor.scene.scene_id
    assert window.store.path is not None
    with sqlite3.connect(f"file:{window.store.path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT caption, kind, geometry FROM instances WHERE scene_id = ? ORDER BY position", (scene_id,)
        ).fetchall()
    return [(caption, kind, json.loads(geometry)) for caption, kind, geometry in rows]


def type_caption(qtbot: QtBot, window: MainWindow, text: str) -> None:
    editor = window.canvas.caption_editor
    assert editor is not None, "a new shape asks for its caption"
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def test_a_drawn_box_reaches_the_file_and_undo_follows_the_scene(qtbot: QtBot, window: MainWindow) -> None:
    window.commands.tools[Tool.BOX].trigger()
    drag(qtbot, window.canvas, (0.5, 0.5), (0.9, 0.8))
    type_caption(qtbot, window, "a red circle")
    caption, kind, geometry = stored(window)[-1]
    assert (caption, kind) == ("a red circle", "box")
    assert geometry["box"] == pytest.approx([0.5, 0.5, 0.9, 0.8], abs=0.01)
    first_id = window.editor.scene.scene_id

    second_id = window.scene_list.model.scenes[1].scene_id
    window.scene_list.select_scene(second_id)
    qtbot.waitUntil(lambda: window.editor.scene.scene_id == second_id)
    assert not window.commands.undo.isEnabled()  # the second scene has no history yet
    window.scene_list.select_scene(first_id)
    qtbot.waitUntil(lambda: window.editor.scene.scene_id == first_id)
    window.commands.undo.trigger()  # the caption
    window.commands.undo.trigger()  # the box
    assert len(stored(window)) == 1


def test_copy_and_paste_across_scenes(qtbot: QtBot, window: MainWindow) -> None:
    first = window.editor.scene
    window.editor.set_selection([first.instances[0].uid])
    window.commands.copy.trigger()
    second_id = window.scene_list.model.scenes[1].scene_id
    window.scene_list.select_scene(second_id)
    qtbot.waitUntil(lambda: window.editor.scene.scene_id == second_id)
    window.commands.paste.trigger()
    rows = stored(window, second_id)
    assert len(rows) == 2
    assert rows[-1][0] == "thing 0" and rows[-1][2]["box"] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    assert len(stored(window, first.scene_id)) == 1


def test_a_locked_instance_does_not_move(qtbot: QtBot, window: MainWindow) -> None:
    model = window.instance_list.model
    model.setData(model.index(0, 3), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    drag(qtbot, window.canvas, (0.2, 0.2), (0.6, 0.6))
    assert stored(window)[0][2]["box"] == pytest.approx([0.1, 0.1, 0.3, 0.3])


def test_edits_survive_closing_and_reopening(
    qtbot: QtBot, window: MainWindow, project_path: Path, tmp_path: Path
) -> None:
    window.canvas.set_tool(Tool.BOX)
    drag(qtbot, window.canvas, (0.5, 0.5), (0.7, 0.7))
    type_caption(qtbot, window, "a cat")
    window.scene_settings.caption.setPlainText("a cat on a mat")
    expected = window.editor.scene
    window.close()  # no save command: closing writes what is pending

    again = open_window(qtbot, project_path, tmp_path / "home")
    try:
        scene = again.editor.scene
        assert scene.caption == "a cat on a mat"
        assert [(i.caption, i.spec) for i in scene.instances] == [(i.caption, i.spec) for i in expected.instances]
        assert again.canvas.item_for(scene.instances[-1].uid) is not None
    finally:
        again.close()


def test_layout_is_kept_in_normalised_coordinates_when_the_size_changes(qtbot: QtBot, window: MainWindow) -> None:
    window.scene_settings.size_preset.setCurrentIndex(1)
    window.scene_settings.size_preset.activated.emit(1)  # 768 x 512
    scene = window.editor.scene
    assert (scene.width, scene.height) == (768, 512)
    assert stored(window)[0][2]["box"] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    item = window.canvas.item_for(scene.instances[0].uid)
    assert item is not None and item.bounds_rect.width() == pytest.approx(0.2 * 768)


def test_a_rendered_scene_shows_its_image_the_first_time_it_is_opened(qtbot: QtBot, tmp_path: Path) -> None:
    path = rendered_project(tmp_path / "r.instproj")
    (tmp_path / "home").mkdir()
    window = open_window(qtbot, path, tmp_path / "home")  # the scene selected when the project opens
    try:
        qtbot.waitUntil(lambda: not window.canvas._background.pixmap().isNull(), timeout=10_000)
        qtbot.waitUntil(lambda: window.history.list.count() == 1, timeout=10_000)
        second = window.scene_list.model.scenes[1].scene_id
        window.scene_list.select_scene(second)  # never opened before in this session
        qtbot.waitUntil(lambda: window.editor is not None and window.editor.scene_id == second, timeout=10_000)
        qtbot.waitUntil(lambda: not window.canvas._background.pixmap().isNull(), timeout=10_000)
        qtbot.waitUntil(lambda: window.history.list.count() == 1, timeout=10_000)
    finally:
        window.close()


def test_the_default_layout_gives_the_instance_list_room(qtbot: QtBot, tmp_path: Path) -> None:
    path = make_project(tmp_path / "many.instproj", scenes=1, instances=10)
    (tmp_path / "home").mkdir()
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, "dark")  # the theme sets the rows' height
    settings = QSettings(str(tmp_path / "home" / "gui.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, tmp_path / "home")
    qtbot.addWidget(window)
    window.show()  # at its default size
    qtbot.waitExposed(window)
    window.open_project(path)
    qtbot.waitUntil(lambda: window.editor is not None, timeout=10_000)
    try:
        table = window.instance_list.table
        qtbot.waitUntil(lambda: table.rowHeight(0) > 0)
        rows_shown = table.viewport().height() // table.rowHeight(0)
        assert rows_shown >= 5, f"only {rows_shown} rows of the instance list fit"
        assert window.canvas.height() >= 400
    finally:
        window.close()


def test_the_welcome_page_shows_no_editing_docks_even_after_a_saved_layout(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    settings = window.settings
    window.close()  # saves the editor's dock layout
    assert settings.value("windowState") is not None
    again = MainWindow(settings, tmp_path / "home")
    qtbot.addWidget(again)
    again.show()
    qtbot.waitExposed(again)
    try:
        assert again.pages.currentIndex() == 0
        assert not any(dock.isVisible() for dock in again.docks.values())
    finally:
        again.close()


def test_the_preflight_banner_lies_over_the_canvas_without_moving_it(qtbot: QtBot, window: MainWindow) -> None:
    window.editor.set_fields("Model", settings=SceneSettings(model_id="sd15"))  # no demo-model warnings
    before = window.canvas.geometry()
    banner = window.warnings
    qtbot.waitUntil(lambda: not banner.isVisible(), timeout=5_000)
    uid = window.editor.scene.instances[0].uid
    model = window.instance_list.model
    model.setData(model.index(0, 1), "", Qt.ItemDataRole.EditRole)  # an instance without a caption
    assert window.editor.scene.instance(uid).caption == ""
    qtbot.waitUntil(banner.isVisible, timeout=5_000)
    assert "caption" in banner.text()
    assert window.canvas.geometry() == before
    assert banner.parent() is window.canvas and banner.geometry().top() < 20
    window.commands.undo.trigger()
    qtbot.waitUntil(lambda: not banner.isVisible(), timeout=5_000)
    assert window.canvas.geometry() == before


def test_a_caption_shows_as_it_is_typed_and_letters_pick_no_tool(qtbot: QtBot, window: MainWindow) -> None:
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas, Qt.Key.Key_B)  # on the canvas, B picks the box tool
    assert window.canvas.tool is Tool.BOX
    drag(qtbot, window.canvas, (0.5, 0.5), (0.9, 0.8))
    line = window.canvas.caption_editor
    assert line is not None and line.hasFocus()
    qtbot.keyClicks(line, "a pesky red blob")  # p, e, s, r, b... are tool keys on the canvas
    assert window.canvas.tool is Tool.BOX
    new = window.editor.scene.instances[-1]
    assert new.caption == "a pesky red blob"  # shown in place (and in the list) before Enter
    assert window.instance_list.model.data(window.instance_list.model.index(1, 1)) == "a pesky red blob"
    qtbot.keyClick(line, Qt.Key.Key_Return)
    assert stored(window)[-1][0] == "a pesky red blob"
    window.commands.undo.trigger()  # the caption is one step
    assert window.editor.scene.instances[-1].caption == ""

    window.scene_list.setFocus()
    qtbot.keyClick(window.scene_list, Qt.Key.Key_E)  # off the canvas a letter is just a letter
    assert window.canvas.tool is Tool.BOX


def test_esc_puts_the_caption_back(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.mouseDClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=window.canvas.map_normalised(0.2, 0.2))
    line = window.canvas.caption_editor
    assert line is not None
    qtbot.keyClicks(line, "something else")
    assert window.editor.scene.instances[0].caption == "something else"
    qtbot.keyClick(line, Qt.Key.Key_Escape)
    assert window.canvas.caption_editor is None
    assert window.editor.scene.instances[0].caption == "thing 0" and stored(window)[0][0] == "thing 0"


def test_a_file_that_is_not_a_project_leaves_the_open_one_open(
    qtbot: QtBot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text: warnings.append(text))
    assert window.store is not None
    opened = window.store.path
    scene_id = window.editor.scene_id
    bogus = tmp_path / "notes.instproj"
    bogus.write_text("not a database")
    window.open_project(bogus)
    qtbot.waitUntil(lambda: bool(warnings), timeout=10_000)
    assert "Could not open" in warnings[0] and "notes.instproj" in warnings[0]
    assert window.store is not None and window.store.path == opened
    assert window.editor is not None and window.editor.scene_id == scene_id
    assert window.pages.currentIndex() == 1
    window.editor.set_fields("Edit caption", caption="still editable")
    assert stored(window)  # the store still writes


def test_reopening_the_open_project_keeps_it(qtbot: QtBot, window: MainWindow) -> None:
    assert window.store is not None
    store = window.store
    window.open_project(store.path)
    assert window.store is store and window.editor is not None


def test_help_lists_the_shortcuts_from_the_actions_themselves(qtbot: QtBot, window: MainWindow) -> None:
    shown: list[str] = []
    monkeypatch_exec = pytest.MonkeyPatch()
    monkeypatch_exec.setattr(ShortcutsDialog, "exec", lambda dialog: shown.append(dialog.text.toPlainText()) or 0)
    try:
        help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
        (entry,) = [a for a in help_menu.actions() if a.text() == "Keyboard shortcuts"]
        entry.trigger()
    finally:
        monkeypatch_exec.undo()
    (text,) = shown
    for expected in ("Box tool", "Render", "Undo", "Duplicate instances", "nudge the selection", "Ctrl+Return"):
        assert expected in text, expected


def test_a_first_run_hint_until_the_first_instance_is_drawn(qtbot: QtBot, window: MainWindow) -> None:
    hint = window.hint.overlay
    assert hint.isVisible() and "draws a box" in hint.text()  # a first run, on a scene with an instance
    window.canvas.set_tool(Tool.BOX)
    drag(qtbot, window.canvas, (0.5, 0.5), (0.9, 0.8))
    type_caption(qtbot, window, "a red circle")
    assert not hint.isVisible()
    window.commands.new_scene.trigger()  # an empty scene shows it again
    qtbot.waitUntil(lambda: window.editor is not None and not window.editor.scene.instances, timeout=10_000)
    assert hint.isVisible()


def test_quit_has_a_key_on_every_platform(window: MainWindow) -> None:
    assert not window.commands.quit.shortcut().isEmpty()


def test_what_is_only_good_to_know_comes_after_what_is_wrong(qtbot: QtBot, window: MainWindow) -> None:
    banner = window.warnings
    # The demo model on a 512x512 canvas with a caption it knows: only the note of the size it renders at.
    window.editor.set_fields("Caption", caption="a red circle")
    uid = window.editor.scene.instances[0].uid
    window.editor.set_caption(uid, "a blue square")
    qtbot.waitUntil(lambda: banner.isVisible() and "64x64" in banner.text(), timeout=5_000)
    assert banner.text().startswith("ℹ") and "⚠" not in banner.text() and banner.property("info") is True
    window.editor.set_caption(uid, "")  # now something is wrong: it comes first
    qtbot.waitUntil(lambda: banner.text().startswith("⚠"), timeout=5_000)
    assert "no caption" in banner.text().split("<br>")[0] and banner.property("info") is False
