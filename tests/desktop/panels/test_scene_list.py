from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from desktop.main_window import MainWindow


def test_scene_list_switches_reorders_adds_and_deletes(qtbot: QtBot, window: MainWindow) -> None:
    model = window.scene_list.model
    assert [s.name for s in model.scenes] == ["scene 1", "scene 2"]
    assert "never rendered" in model.data(model.index(0), Qt.ItemDataRole.DisplayRole)
    window.scene_list.select_scene(model.scenes[1].scene_id)
    qtbot.waitUntil(lambda: window.editor.scene.name == "scene 2")

    model.dropMimeData(model.mimeData([model.index(1)]), Qt.DropAction.MoveAction, 0, 0, QModelIndex())
    assert [s.name for s in model.scenes] == ["scene 2", "scene 1"]
    window.add_scene()
    qtbot.waitUntil(lambda: model.rowCount() == 3)
    qtbot.waitUntil(lambda: window.editor.scene.name == "Scene 3")
    window.delete_scene(confirm=False)
    qtbot.waitUntil(lambda: model.rowCount() == 2)
    assert [s.name for s in model.scenes] == ["scene 2", "scene 1"]  # the order was stored
