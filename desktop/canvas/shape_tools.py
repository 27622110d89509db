"""The tools that draw a new instance: box, point, scribble and polygon. Each new shape is one undo
step and asks for its caption in place."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QGraphicsRectItem

from desktop.canvas.tool_base import OVERLAY_Z, CanvasTool, StrokeOverlay, ToolHost
from desktop.geometry import clamp_point, resample_polyline
from engine.request import InstanceKind, InstanceSpec

MIN_BOX_PX = 4.0  # a smaller drag is a click, not a box
MIN_POLYGON_VERTICES = 3


class BoxTool(CanvasTool):
    """Drag a box."""

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._start: QPointF | None = None
        self._rubber = QGraphicsRectItem()
        self._rubber.setZValue(OVERLAY_Z)
        self._rubber.setVisible(False)
        host.graphics().addItem(self._rubber)

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        self._start = pos
        self._rubber.setRect(QRectF(pos, pos))
        self._rubber.setPen(QPen(QColor("#ffffff"), 1.5 / self.host.view_scale(), Qt.PenStyle.DashLine))
        self._rubber.setVisible(True)

    def move(self, pos: QPointF) -> None:
        if self._start is not None:
            self._rubber.setRect(QRectF(self._start, pos).normalized())

    def release(self, pos: QPointF) -> None:
        start, self._start = self._start, None
        self._rubber.setVisible(False)
        if start is None:
            return
        rect = QRectF(start, pos).normalized()
        if rect.width() >= MIN_BOX_PX and rect.height() >= MIN_BOX_PX:
            x0, y0 = self.host.normalised(rect.topLeft())
            x1, y1 = self.host.normalised(rect.bottomRight())
            self.editor.add_instance(InstanceSpec(caption="", kind=InstanceKind.BOX, box=(x0, y0, x1, y1)))

    @property
    def busy(self) -> bool:
        return self._start is not None

    def cancel(self) -> None:
        self._start = None
        self._rubber.setVisible(False)


class PointTool(CanvasTool):
    """Click to place a point."""

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        x, y = self.host.normalised(pos)
        self.editor.add_instance(InstanceSpec(caption="", kind=InstanceKind.POINT, point=(x, y)))


class ScribbleTool(CanvasTool):
    """Drag freehand; the stroke is resampled to evenly spaced points."""

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._points: list[QPointF] = []
        self._stroke = StrokeOverlay(host)

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        self._points = [pos]
        self._stroke.show(self._points)

    def move(self, pos: QPointF) -> None:
        if self._points:
            self._points.append(pos)
            self._stroke.show(self._points)

    def release(self, pos: QPointF) -> None:
        points = [self.host.normalised(p) for p in self._points]
        self.cancel()
        if len(points) >= 2:
            scribble = resample_polyline(points)
            self.editor.add_instance(InstanceSpec(caption="", kind=InstanceKind.SCRIBBLE, scribble=scribble))

    @property
    def busy(self) -> bool:
        return bool(self._points)

    def cancel(self) -> None:
        self._points = []
        self._stroke.clear()


class PolygonTool(CanvasTool):
    """Click the vertices; double-click or Enter closes the polygon, Esc cancels it."""

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._vertices: list[QPointF] = []
        self._stroke = StrokeOverlay(host)

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        self._vertices.append(pos)
        self._stroke.show(self._vertices)

    def move(self, pos: QPointF) -> None:
        if self._vertices:
            self._stroke.show([*self._vertices, pos])

    def double_click(self, pos: QPointF) -> None:
        self.close_polygon()

    def key(self, key: Qt.Key) -> bool:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.close_polygon()
            return True
        return False

    def close_polygon(self) -> None:
        # A double-click also delivered a press: drop vertices that repeat the last one.
        vertices: list[QPointF] = []
        for p in self._vertices:
            if not vertices or (p - vertices[-1]).manhattanLength() > 1.0:
                vertices.append(p)
        self.cancel()
        if len(vertices) < MIN_POLYGON_VERTICES:
            self.editor.message.emit(f"A polygon needs at least {MIN_POLYGON_VERTICES} vertices.")
            return
        polygon = tuple(clamp_point(self.host.normalised(p)) for p in vertices)
        self.editor.add_instance(InstanceSpec(caption="", kind=InstanceKind.MASK, polygon=polygon))

    @property
    def busy(self) -> bool:
        return bool(self._vertices)

    def cancel(self) -> None:
        self._vertices = []
        self._stroke.clear()
