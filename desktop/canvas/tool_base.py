"""What a canvas tool is: a small object that turns presses, moves and releases into editor calls.

The view owns navigation (zoom, pan), the items that show the instances and the inline caption editor;
the tool under the mouse decides what a press means. Tools draw their own feedback (a rubber band, a
stroke) as overlay items in the view's graphics scene, and change the scene only through the editor.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsScene

from desktop.canvas.items import InstanceItem
from desktop.editor.scene_editor import SceneEditor
from desktop.geometry import Point
from projects.scene_data import InstanceData

OVERLAY_Z = 900  # above every instance


class ToolHost(Protocol):
    """What a tool may ask of the canvas it works on."""

    brush_radius: int

    @property
    def editor(self) -> SceneEditor | None: ...

    @property
    def canvas_size(self) -> tuple[int, int]: ...

    def graphics(self) -> QGraphicsScene: ...

    def view_scale(self) -> float: ...

    def normalised(self, pos: QPointF) -> Point: ...

    def instance_at(self, pos: QPointF) -> InstanceData | None: ...

    def handle_at(self, pos: QPointF) -> tuple[str, int] | None: ...

    def item_for(self, uid: int) -> InstanceItem | None: ...

    def edit_caption(self, uid: int) -> None: ...


class CanvasTool:
    """A tool that does nothing: every event is ignored. Subclasses override what they use."""

    def __init__(self, host: ToolHost) -> None:
        self.host = host

    @property
    def editor(self) -> SceneEditor:
        editor = self.host.editor
        if editor is None:  # the view only forwards events while a scene is open
            raise RuntimeError("no scene is open")
        return editor

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        pass

    def move(self, pos: QPointF) -> None:
        pass

    def release(self, pos: QPointF) -> None:
        pass

    def double_click(self, pos: QPointF) -> None:
        pass

    def key(self, key: Qt.Key) -> bool:
        """Handle a key the view does not; True when it was handled."""
        return False

    @property
    def busy(self) -> bool:
        """A drag or a stroke is in progress (Esc cancels it instead of clearing the selection)."""
        return False

    def cancel(self) -> None:
        """Drop whatever is in progress, leaving the scene as it was before it started."""


class StrokeOverlay:
    """A white polyline over the canvas: the feedback of scribbles and polygons being drawn."""

    def __init__(self, host: ToolHost) -> None:
        self.host = host
        self.item = QGraphicsPathItem()
        self.item.setZValue(OVERLAY_Z)
        host.graphics().addItem(self.item)

    def show(self, points: list[QPointF]) -> None:
        path = QPainterPath()
        if points:
            path.addPolygon(QPolygonF(points))
        self.item.setPen(QPen(QColor("#ffffff"), 2.0 / self.host.view_scale()))
        self.item.setPath(path)

    def clear(self) -> None:
        self.item.setPath(QPainterPath())
