"""The open scenes' editors: one per scene, its history kept while another scene is shown."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from desktop.editor.scene_editor import SceneEditor
from desktop.editor.workbench import Workbench
from projects.scene_data import SceneData


def test_each_scene_keeps_its_own_editor_and_history(qtbot: QtBot) -> None:
    bench = Workbench()
    shown: list[SceneEditor | None] = []
    saved: list[SceneData] = []
    bench.currentChanged.connect(shown.append)
    bench.edited.connect(saved.append)

    first = bench.open(SceneData(1, "one"))
    first.set_fields("Edit caption", caption="a cat")
    assert bench.undo_group.activeStack() is first.undo_stack and bench.undo_group.canUndo()
    second = bench.open(SceneData(2, "two"))
    assert shown == [first, second] and not bench.undo_group.canUndo()
    assert [s.caption for s in saved] == ["a cat"]

    # Coming back keeps the session's edits, even if the file still has the old scene.
    assert bench.activate(1) and bench.current is first and first.scene.caption == "a cat"
    assert bench.open(SceneData(1, "one", caption="stale")) is first and first.scene.caption == "a cat"
    assert not bench.activate(3)

    bench.keep_only({2})  # scene 1 was deleted
    assert bench.current is None and bench.editor(1) is None and bench.editor(2) is second
    bench.clear()
    assert bench.editor(2) is None and shown[-1] is None
