"""Drawing and editing on the canvas with real mouse and key events, on a scene editor without a window."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot

from desktop.canvas.colors import CAPTION_COLORS, caption_color
from desktop.canvas.tools import Tool
from desktop.canvas.view import CanvasView
from desktop.editor.scene_editor import SceneEditor
from engine.request import InstanceKind, InstanceSpec, MaskRLE
from projects.scene_data import InstanceData, SceneData
from tests.desktop.conftest import click, drag


@pytest.fixture
def editor() -> SceneEditor:
    box = InstanceSpec(caption="thing 0", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.3, 0.3))
    return SceneEditor(SceneData(1, "scene 1", "caption 1", instances=(InstanceData(box),)))


@pytest.fixture
def canvas(qtbot: QtBot, editor: SceneEditor) -> Iterator[CanvasView]:
    view = CanvasView()
    qtbot.addWidget(view)
    view.resize(800, 800)
    view.show()
    qtbot.waitExposed(view)
    view.set_editor(editor)
    view.fit()
    yield view
    view.set_editor(None)


def stored(canvas: CanvasView) -> list[tuple[str, str, dict[str, Any]]]:
    """The scene's instances as the editor holds them: caption, kind and the stored location fields."""
    assert canvas.editor is not None
    rows = []
    for inst in canvas.editor.scene.instances:
        data = inst.spec.to_dict()
        rows.append((data.pop("caption"), data.pop("kind"), data))
    return rows


def flat(points: object) -> list[float]:
    assert isinstance(points, list | tuple)
    return [float(v) for point in points for v in point]


def type_caption(qtbot: QtBot, canvas: CanvasView, text: str) -> None:
    line = canvas.caption_editor
    assert line is not None, "a new shape asks for its caption"
    qtbot.keyClicks(line, text)
    qtbot.keyClick(line, Qt.Key.Key_Return)


def test_box_tool_draws_a_box_and_asks_for_its_caption(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.BOX)
    drag(qtbot, canvas, (0.5, 0.5), (0.9, 0.8))
    type_caption(qtbot, canvas, "a red circle")
    rows = stored(canvas)
    assert len(rows) == 2
    caption, kind, geometry = rows[-1]
    assert (caption, kind) == ("a red circle", "box")
    assert geometry["box"] == pytest.approx([0.5, 0.5, 0.9, 0.8], abs=0.01)


def test_a_tiny_drag_is_not_a_box(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.BOX)
    drag(qtbot, canvas, (0.5, 0.5), (0.502, 0.502), steps=1)
    assert len(stored(canvas)) == 1


def test_point_tool_places_a_point(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.POINT)
    click(qtbot, canvas, 0.25, 0.75)
    type_caption(qtbot, canvas, "a dog")
    caption, kind, geometry = stored(canvas)[-1]
    assert (caption, kind) == ("a dog", "point")
    assert geometry["point"] == pytest.approx([0.25, 0.75], abs=0.01)


def test_scribble_is_resampled_to_evenly_spaced_points(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.SCRIBBLE)
    drag(qtbot, canvas, (0.2, 0.6), (0.8, 0.6), steps=40)
    type_caption(qtbot, canvas, "a snake")
    _caption, kind, geometry = stored(canvas)[-1]
    assert kind == "scribble"
    points = geometry["scribble"]
    assert isinstance(points, list) and len(points) == 20
    xs = [p[0] for p in points]
    gaps = [b - a for a, b in itertools.pairwise(xs)]
    assert xs[0] == pytest.approx(0.2, abs=0.01) and xs[-1] == pytest.approx(0.8, abs=0.01)
    assert max(gaps) - min(gaps) < 0.01  # evenly spaced along the stroke


def test_polygon_closes_with_enter_and_esc_cancels(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.POLYGON)
    for x, y in ((0.1, 0.5), (0.4, 0.5), (0.3, 0.9)):
        click(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert len(stored(canvas)) == 1
    for x, y in ((0.1, 0.5), (0.4, 0.5), (0.3, 0.9)):
        click(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    type_caption(qtbot, canvas, "a sail")
    _caption, kind, geometry = stored(canvas)[-1]
    assert kind == "mask"
    assert flat(geometry["polygon"]) == pytest.approx([0.1, 0.5, 0.4, 0.5, 0.3, 0.9], abs=0.01)


def test_polygon_closes_with_a_double_click(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.POLYGON)
    click(qtbot, canvas, 0.6, 0.6)
    click(qtbot, canvas, 0.9, 0.6)
    click(qtbot, canvas, 0.9, 0.9)
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.map_normalised(0.9, 0.9))
    assert canvas.caption_editor is not None
    assert len(stored(canvas)[-1][2]["polygon"]) == 3  # type: ignore[arg-type]


def test_brush_paints_a_new_mask_and_the_eraser_removes_from_it(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.BRUSH)
    canvas.set_brush_radius(20)
    drag(qtbot, canvas, (0.5, 0.7), (0.8, 0.7))
    type_caption(qtbot, canvas, "a puddle")
    _caption, kind, geometry = stored(canvas)[-1]
    assert kind == "mask"
    bitmap = MaskRLE.from_dict(geometry["mask"]).decode()
    assert bitmap.shape == (512, 512)
    assert bitmap[358, 256] and bitmap[358, 409] and not bitmap[100, 100]
    painted = int(bitmap.sum())

    canvas.set_tool(Tool.ERASER)
    drag(qtbot, canvas, (0.65, 0.6), (0.65, 0.8))
    bitmap = MaskRLE.from_dict(stored(canvas)[-1][2]["mask"]).decode()
    assert not bitmap[358, 333] and bitmap[358, 256]
    assert 0 < bitmap.sum() < painted


def test_move_and_resize_with_the_select_tool_are_one_undo_step_each(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.SELECT)
    ((_, _, before),) = stored(canvas)
    assert before["box"] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    drag(qtbot, canvas, (0.2, 0.2), (0.4, 0.5))  # grab the box by its middle
    assert stored(canvas)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.5, 0.6], abs=0.01)
    drag(qtbot, canvas, (0.5, 0.6), (0.7, 0.9))  # the bottom-right handle
    assert stored(canvas)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.7, 0.9], abs=0.01)

    stack = canvas.editor.undo_stack
    assert stack.count() == 2
    stack.undo()
    assert stored(canvas)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.5, 0.6], abs=0.01)
    stack.undo()
    assert stored(canvas)[0][2]["box"] == pytest.approx([0.1, 0.1, 0.3, 0.3])
    stack.redo()
    assert stored(canvas)[0][2]["box"] == pytest.approx([0.3, 0.4, 0.5, 0.6], abs=0.01)


def test_moving_stays_on_the_canvas(qtbot: QtBot, canvas: CanvasView) -> None:
    drag(qtbot, canvas, (0.2, 0.2), (-0.5, -0.5))
    assert stored(canvas)[0][2]["box"] == pytest.approx([0.0, 0.0, 0.2, 0.2], abs=0.01)


def test_polygon_vertices_can_be_dragged(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.POLYGON)
    for x, y in ((0.5, 0.5), (0.9, 0.5), (0.7, 0.9)):
        click(qtbot, canvas, x, y)
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    type_caption(qtbot, canvas, "a sail")
    canvas.set_tool(Tool.SELECT)
    drag(qtbot, canvas, (0.7, 0.9), (0.7, 0.95))
    polygon = stored(canvas)[-1][2]["polygon"]
    assert flat(polygon) == pytest.approx([0.5, 0.5, 0.9, 0.5, 0.7, 0.95], abs=0.01)


def test_keys_delete_duplicate_nudge_cycle_and_cancel(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Tab)
    assert len(canvas.editor.selection) == 1
    qtbot.keyClick(canvas, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # 10 px of 512
    assert stored(canvas)[0][2]["box"][0] == pytest.approx(0.1 + 10 / 512)  # type: ignore[index]
    canvas.editor.duplicate_selected()
    assert len(stored(canvas)) == 2
    assert canvas.editor.selection == (canvas.editor.scene.instances[1].uid,)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert len(stored(canvas)) == 1
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)
    assert canvas.editor.selection == ()


def test_the_slot_limit_is_kept(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.POINT)
    for k in range(35):
        click(qtbot, canvas, 0.02 + 0.027 * k, 0.9)
        if canvas.caption_editor is not None:
            qtbot.keyClick(canvas.caption_editor, Qt.Key.Key_Escape)
    assert len(stored(canvas)) == 30


def test_caption_edit_on_double_click(qtbot: QtBot, canvas: CanvasView) -> None:
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.map_normalised(0.2, 0.2))
    editor = canvas.caption_editor
    assert editor is not None
    editor.clear()
    type_caption(qtbot, canvas, "a bird")
    assert stored(canvas)[0][0] == "a bird"
    assert InstanceKind(stored(canvas)[0][1]) is InstanceKind.BOX


def test_outlines_take_the_colour_the_caption_names(qtbot: QtBot, canvas: CanvasView) -> None:
    canvas.set_tool(Tool.BOX)
    drag(qtbot, canvas, (0.5, 0.5), (0.9, 0.8))
    type_caption(qtbot, canvas, "a Blue circle")
    editor = canvas.editor
    assert editor is not None
    blue, plain = editor.scene.instances[-1], editor.scene.instances[0]
    blue_item, plain_item = canvas.item_for(blue.uid), canvas.item_for(plain.uid)
    assert blue_item is not None and plain_item is not None
    assert blue_item.display_color == CAPTION_COLORS["blue"] != blue.color
    assert plain_item.display_color == plain.color  # "thing 0" names no colour: its slot colour
    inside = canvas.map_normalised(0.7, 0.7)

    def tint() -> QColor:
        return canvas.viewport().grab().toImage().pixelColor(inside)

    assert tint().blue() > tint().red()  # filled in blue
    canvas.set_caption_colors(False)
    assert blue_item.display_color == blue.color
    assert tint().red() > tint().blue()  # in its (orange) slot colour
    canvas.set_caption_colors(True)
    assert blue_item.display_color == CAPTION_COLORS["blue"]
    assert caption_color("a light grey kite") == CAPTION_COLORS["grey"] and caption_color("a cat") is None
