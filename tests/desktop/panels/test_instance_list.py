"""The instance list on a scene editor, without a window: captions, reordering, selection and the count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import QLineEdit
from pytestqt.qtbot import QtBot

from desktop.editor.scene_editor import SceneEditor
from desktop.panels.instance_list import InstanceListPanel
from engine.request import InstanceKind, InstanceSpec
from projects.scene_data import InstanceData, SceneData


def things(count: int) -> SceneEditor:
    specs = [
        InstanceSpec(f"thing {k}", InstanceKind.BOX, box=(0.1 * k, 0.1, 0.1 * k + 0.2, 0.3)) for k in range(count)
    ]
    return SceneEditor(SceneData(1, "scene", instances=tuple(InstanceData(spec) for spec in specs)))


@pytest.fixture
def panel(qtbot: QtBot) -> Iterator[InstanceListPanel]:
    widget = InstanceListPanel()
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    widget.set_editor(None)


def captions(editor: SceneEditor) -> list[str]:
    return [inst.caption for inst in editor.scene.instances]


def test_caption_is_edited_in_place_with_the_keyboard(qtbot: QtBot, panel: InstanceListPanel) -> None:
    editor = things(1)
    panel.set_editor(editor)
    table = panel.table
    table.setCurrentIndex(panel.model.index(0, 1))
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_F2)
    line = table.findChild(QLineEdit)
    assert line is not None and line.isVisible(), "F2 opens the caption editor"
    line.selectAll()
    qtbot.keyClicks(line, "a blue vase")
    qtbot.keyClick(line, Qt.Key.Key_Return)
    # Qt commits an item editor's data from a queued call after Enter.
    qtbot.waitUntil(lambda: captions(editor) == ["a blue vase"])
    editor.undo_stack.undo()
    assert captions(editor) == ["thing 0"]
    assert panel.model.data(panel.model.index(0, 1)) == "thing 0"


def test_drag_reorder_and_the_buttons_change_the_slot_order(panel: InstanceListPanel) -> None:
    editor = things(3)
    panel.set_editor(editor)
    model = panel.model
    mime = model.mimeData([model.index(2, 0)])
    model.dropMimeData(mime, Qt.DropAction.MoveAction, 0, 0, QModelIndex())  # what a drop on the top does
    assert captions(editor) == ["thing 2", "thing 0", "thing 1"]
    panel.table.selectRow(1)
    panel.down_button.click()
    assert captions(editor) == ["thing 2", "thing 1", "thing 0"]
    editor.undo_stack.undo()
    editor.undo_stack.undo()
    assert captions(editor) == ["thing 0", "thing 1", "thing 2"]


def test_selection_is_shared_with_the_editor_lock_and_delete(panel: InstanceListPanel) -> None:
    editor = things(2)
    panel.set_editor(editor)
    assert panel.count_label.text() == "2 / 30 instances"
    panel.table.selectRow(0)
    assert editor.selection == (editor.scene.instances[0].uid,)
    editor.set_selection([])
    assert not panel.table.selectionModel().selectedRows()
    panel.delete_button.click()  # nothing selected: nothing deleted
    assert len(editor.scene.instances) == 2
    panel.model.setData(panel.model.index(1, 3), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert editor.scene.instances[1].locked
    panel.table.selectRow(0)
    panel.delete_button.click()
    assert captions(editor) == ["thing 1"] and panel.count_label.text() == "1 / 30 instances"


def test_the_panel_follows_the_current_scene(panel: InstanceListPanel) -> None:
    first, second = things(1), things(3)
    panel.set_editor(first)
    panel.set_editor(second)
    assert panel.model.rowCount() == 3
    first.add_instance(InstanceSpec("late", InstanceKind.POINT, point=(0.5, 0.5)), ask_caption=False)
    assert panel.model.rowCount() == 3  # the old scene no longer drives the list
    panel.set_editor(None)
    assert panel.model.rowCount() == 0 and panel.count_label.text() == "0 / 30 instances"
