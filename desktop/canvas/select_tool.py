"""The select tool: click to select (Shift/Ctrl toggles), drag to move, drag the handles to resize or to
move a polygon's vertex, double-click to edit the caption. A drag is one undo step."""

from __future__ import annotations

from enum import Enum, auto

from PySide6.QtCore import QPointF, Qt

from desktop.canvas.tool_base import CanvasTool
from desktop.editor.scene_editor import InstanceDrag
from desktop.geometry import Box, Point, bounds, fit_to_box, move_vertex, translate


class _Mode(Enum):
    MOVE = auto()
    RESIZE = auto()
    VERTEX = auto()


_UNDO_TEXT = {_Mode.MOVE: "Move", _Mode.RESIZE: "Resize", _Mode.VERTEX: "Move vertex"}


class SelectTool(CanvasTool):
    _drag: InstanceDrag | None = None
    _mode = _Mode.MOVE
    _handle = 0
    _start = QPointF()

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        editor = self.editor
        self._start = pos
        handle = self.host.handle_at(pos)
        selected = editor.selected()
        if handle is not None and len(selected) == 1:
            kind, self._handle = handle
            self._mode = _Mode.VERTEX if kind == "vertex" else _Mode.RESIZE
            self._drag = editor.begin_drag(selected)
            return
        hit = self.host.instance_at(pos)
        if hit is None:
            editor.set_selection([])
            return
        if modifiers & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier):
            editor.set_selection(set(editor.selection) ^ {hit.uid})
            return
        if hit.uid not in editor.selection:
            editor.set_selection([hit.uid])
        self._mode = _Mode.MOVE
        self._drag = editor.begin_drag()

    def move(self, pos: QPointF) -> None:
        if self._drag is None:
            return
        if self._mode is _Mode.MOVE:
            w, h = self.host.canvas_size
            dx, dy = (pos.x() - self._start.x()) / w, (pos.y() - self._start.y()) / h
            self._drag.preview(lambda spec: translate(spec, dx, dy))
        elif self._mode is _Mode.RESIZE:
            to = self.host.normalised(pos)
            self._drag.preview(lambda spec: fit_to_box(spec, resized(bounds(spec), self._handle, to)))
        else:
            to = self.host.normalised(pos)
            self._drag.preview(lambda spec: move_vertex(spec, self._handle, to))

    def release(self, pos: QPointF) -> None:
        drag, self._drag = self._drag, None
        if drag is not None:
            drag.commit(_UNDO_TEXT[self._mode])

    def double_click(self, pos: QPointF) -> None:
        hit = self.host.instance_at(pos)
        if hit is not None:
            self.host.edit_caption(hit.uid)

    @property
    def busy(self) -> bool:
        return self._drag is not None

    def cancel(self) -> None:
        drag, self._drag = self._drag, None
        if drag is not None:
            drag.cancel()


def resized(box: Box, handle: int, to: Point) -> Box:
    """The box after dragging resize handle `handle` (0 top-left, clockwise) to `to`."""
    x0, y0, x1, y1 = box
    x, y = to
    if handle in (0, 6, 7):
        x0 = x
    if handle in (2, 3, 4):
        x1 = x
    if handle in (0, 1, 2):
        y0 = y
    if handle in (4, 5, 6):
        y1 = y
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
