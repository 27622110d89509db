"""Drawing and editing on the canvas with real mouse and key events; every check reads the project file."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from desktop.canvas.tools import Tool
from desktop.main_window import MainWindow
from engine.request import InstanceKind, MaskRLE
from tests.desktop.conftest import click, drag, open_window


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


def flat(points: object) -> list[float]:
    assert isinstance(points, list)
    return [float(v) for point in points for v in point]


def type_caption(qtbot: QtBot, window: MainWindow, text: str) -> None:
    editor = window.canvas.caption_editor
    assert editor is not None, "a new shape asks for its caption"
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key.Key_Return)


def test_box_tool_draws_a_box_and_asks_for_its_caption(qtbot: QtBot, window: MainWindow) -> None:
    window.commands.tools[Tool.BOX].trigger()
    drag(qtbot, window.canvas, (0.5, 0.5), (0.9, 0.8))
    type_caption(qtbot, window, "a red circle")
    rows = stored(window)
    assert len(rows) == 2
    caption, kind, geometry = rows[-1]
    assert (caption, kind) == ("a red circle", "box")
    assert geometry["box"] == pytest.approx([0.5, 0.5, 0.9, 0.8], abs=0.01)


def test_a_tiny_drag_is_not_a_box(qtbot: QtBot, window: MainWindow) -> None:
    window.canvas.set_tool(Tool.BOX)
    drag(qtbot, window.canvas, (0.5, 0.5), (0.502, 0.502), steps=1)
    assert len(stored(window)) == 1


def test_point_tool_places_a_point(qtbot: QtBot, window: MainWindow) -> None:
    window.canvas.set_tool(Tool.POINT)
    click(qtbot, window.canvas, 0.25, 0.75)
    type_caption(qtbot, window, "a dog")
    caption, kind, geometry = stored(window)[-1]
    assert (caption, kind) == ("a dog", "point")
    assert geometry["point"] == pytest.approx([0.25, 0.75], abs=0.01)


def test_scribble_is_resampled_to_evenly_spaced_points(qtbot: QtBot, window: MainWindow) -> None:
    window.canvas.set_tool(Tool.SCRIBBLE)
    drag(qtbot, window.canvas, (0.2, 0.6), (0.8, 0.6), steps=40)
    type_caption(qtbot, window, "a snake")
    _caption, kind, geometry = stored(window)[-1]
    assert kind == "scribble"
    points = geometry["scribble"]
    assert isinstance(points, list) and len(points) == 20
    xs = [p[0] for p in points]
    gaps = [b - a for a, b in itertools.pairwise(xs)]
    assert xs[0] == pytest.approx(0.2, abs=0.01) and xs[-1] == pytest.approx(0.8, abs=0.01)
    assert max(gaps) - min(gaps) < 0.01  # evenly spaced along the stroke


def test_polygon_closes_with_enter_and_esc_cancels(qtbot: QtBot, window: MainWindow) -> None:
    canvas = window.canvas
    canvas.set_tool(Tool.POLYGON)
    for x, y in ((0.1, 0.5), (0.4, 0.5), (0.3, 0.9)):
        click(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert len(stored(window)) == 1
    for x, y in ((0.1, 0.5), (0.4, 0.5), (0.3, 0.9)):
        click(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    type_caption(qtbot, window, "a sail")
    _caption, kind, geometry = stored(window)[-1]
    assert kind == "mask"
    assert flat(geometry["polygon"]) == pytest.approx([0.1, 0.5, 0.4, 0.5, 0.3, 0.9], abs=0.01)


def test_polygon_closes_with_a_double_click(qtbot: QtBot, window: MainWindow) -> None:
    canvas = window.canvas
    canvas.set_tool(Tool.POLYGON)
    click(qtbot, canvas, 0.6, 0.6)
    click(qtbot, canvas, 0.9, 0.6)
    click(qtbot, canvas, 0.9, 0.9)
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.map_normalised(0.9, 0.9))
    assert canvas.caption_editor is not None
    assert len(stored(window)[-1][2]["polygon"]) == 3  # type: ignore[arg-type]


def test_brush_paints_a_new_mask_and_the_eraser_removes_from_it(qtbot: QtBot, window: MainWindow) -> None:
    canvas = window.canvas
    canvas.set_tool(Tool.BRUSH)
    canvas.set_brush_radius(20)
    drag(qtbot, canvas, (0.5, 0.7), (0.8, 0.7))
    type_caption(qtbot, window, "a puddle")
    _caption, kind, geometry = stored(window)[-1]
    assert kind == "mask"
    bitmap = MaskRLE.from_dict(geometry["mask"]).decode()
    assert bitmap.shape == (512, 512)
    assert bitmap[358, 256] and bitmap[358, 409] and not bitmap[100, 100]
    painted = int(bitmap.sum())

    canvas.set_tool(Tool.ERASER)
    drag(qtbot, canvas, (0.65, 0.6), (0.65, 0.8))
    bitmap = MaskRLE.from_dict(stored(window)[-1][2]["mask"]).decode()
    assert not bitmap[358, 333] and bitmap[358, 256]
    assert 0 < bitmap.sum() < painted


def test_move_and_resize_with_the_select_tool_are_one_undo_step_each(qtbot: QtBot, window: MainWindow) -> None:
    canvas = window.canvas
    canvas.set_tool(Tool.SELECT)
    ((_, _, before),) = stored(window)
    assert before["box"] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    drag(qtbot, canvas, (0.2, 0.2), (0.4, 0.5))  # grab the box by its middle
    assert stored(window)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.5, 0.6], abs=0.01)
    drag(qtbot, canvas, (0.5, 0.6), (0.7, 0.9))  # the bottom-right handle
    assert stored(window)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.7, 0.9], abs=0.01)

    stack = window.workbench.undo_group.activeStack()
    assert stack is not None and stack.count() == 2
    window.commands.undo.trigger()
    assert stored(window)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.5, 0.6], abs=0.01)
    window.commands.undo.trigger()
    assert stored(window)[0][2]["box"] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    window.commands.redo.trigger()
    assert stored(window)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.5, 0.6], abs=0.01)


def test_moving_stays_on_the_canvas(qtbot: QtBot, window: MainWindow) -> None:
    drag(qtbot, window.canvas, (0.2, 0.2), (-0.5, -0.5))
    assert stored(window)[0][2]["box"] == pytest.approx([0.0, 0.0, 0.2, 0.2], abs=0.01)


def test_polygon_vertices_can_be_dragged(qtbot: QtBot, window: MainWindow) -> None:
    canvas = window.canvas
    canvas.set_tool(Tool.POLYGON)
    for x, y in ((0.5, 0.5), (0.9, 0.5), (0.7, 0.9)):
        click(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    type_caption(qtbot, window, "a sail")
    canvas.set_tool(Tool.SELECT)
    drag(qtbot, canvas, (0.7, 0.9), (0.7, 0.95))
    polygon = stored(window)[-1][2]["polygon"]
    assert flat(polygon) == pytest.approx([0.5, 0.5, 0.9, 0.5, 0.7, 0.95], abs=0.01)


def test_keys_delete_duplicate_nudge_cycle_and_cancel(qtbot: QtBot, window: MainWindow) -> None:
    canvas = window.canvas
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Tab)
    assert len(window.editor.selection) == 1
    qtbot.keyClick(canvas, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # 10 px of 512
    assert stored(window)[0][2]["box"][0] == pytest.approx(0.1 + 10 / 512)  # type: ignore[index]
    window.commands.duplicate.trigger()
    assert len(stored(window)) == 2
    assert window.editor.selection == (window.editor.scene.instances[1].uid,)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert len(stored(window)) == 1
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert window.editor.selection == ()


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


def test_the_slot_limit_is_kept(qtbot: QtBot, window: MainWindow) -> None:
    window.canvas.set_tool(Tool.POINT)
    for k in range(35):
        click(qtbot, window.canvas, 0.02 + 0.027 * k, 0.9)
        if window.canvas.caption_editor is not None:
            qtbot.keyClick(window.canvas.caption_editor, Qt.Key.Key_Escape)
    assert len(stored(window)) == 30


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


def test_caption_edit_on_double_click(qtbot: QtBot, window: MainWindow) -> None:
    qtbot.mouseDClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, pos=window.canvas.map_normalised(0.2, 0.2))
    editor = window.canvas.caption_editor
    assert editor is not None
    editor.clear()
    type_caption(qtbot, window, "a bird")
    assert stored(window)[0][0] == "a bird"
    assert InstanceKind(stored(window)[0][1]) is InstanceKind.BOX
