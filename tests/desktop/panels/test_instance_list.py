from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from desktop.main_window import MainWindow
from tests.desktop.canvas.test_view import stored
from tests.desktop.conftest import make_project, open_window


def test_caption_is_edited_in_place_with_the_keyboard(qtbot: QtBot, window: MainWindow) -> None:
    table = window.instance_list.table
    index = window.instance_list.model.index(0, 1)
    table.setCurrentIndex(index)
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_F2)
    editor = table.findChild(QLineEdit)
    assert editor is not None and editor.isVisible(), "F2 opens the caption editor"
    editor.selectAll()
    qtbot.keyClicks(editor, "a blue vase")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    # Qt commits an item editor's data from a queued call after Enter.
    qtbot.waitUntil(lambda: window.editor.scene.instances[0].caption == "a blue vase")
    assert stored(window)[0][0] == "a blue vase"
    window.commands.undo.trigger()
    assert stored(window)[0][0] == "thing 0"


def test_drag_reorder_changes_the_slot_order(qtbot: QtBot, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    path = make_project(tmp_path / "p.instproj", scenes=1, instances=3)
    (tmp_path / "home").mkdir()
    window = open_window(qtbot, path, tmp_path / "home")
    model = window.instance_list.model
    mime = model.mimeData([model.index(2, 0)])
    model.dropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, QModelIndex())  # what a drop on the top does
    assert [row[0] for row in stored(window)] == ["thing 2", "thing 0", "thing 1"]
    window.instance_list.table.selectRow(1)
    window.instance_list.down_button.click()
    assert [row[0] for row in stored(window)] == ["thing 2", "thing 1", "thing 0"]
    window.commands.undo.trigger()
    window.commands.undo.trigger()
    assert [row[0] for row in stored(window)] == ["thing 0", "thing 1", "thing 2"]
    window.close()


def test_selection_is_shared_with_the_canvas_and_the_count_is_shown(qtbot: QtBot, window: MainWindow) -> None:
    panel = window.instance_list
    assert panel.count_label.text() == "1 / 30 instances"
    panel.table.selectRow(0)
    assert window.editor.selection == (window.editor.scene.instances[0].uid,)
    window.editor.set_selection([])
    assert not panel.table.selectionModel().selectedRows()
    panel.delete_button.click()  # nothing selected: nothing deleted
    assert len(stored(window)) == 1
