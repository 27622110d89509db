"""The canvas: the scene at its aspect ratio, the latest render underneath, instances on top, and tools.

The view reads the scene from the `SceneDocument` and redraws on its signals; every change the user
makes becomes an undo command pushed onto the current scene's stack. Live drags preview through the
document (no save, no undo entry) and push one command on release.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from enum import Enum, auto

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
    QUndoCommand,
    QUndoStack,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsView,
    QLineEdit,
    QWidget,
)

from desktop.canvas.items import HandlesItem, InstanceItem
from desktop.canvas.tools import Tool
from desktop.commands import EditInstanceCommand, SetInstancesCommand
from desktop.document import MAX_INSTANCES, SceneDocument
from desktop.geometry import Box, bounds, clamp01, clamp_point, fit_to_box, move_vertex, resample_polyline, translate
from desktop.scene_data import InstanceData
from engine.request import InstanceKind, InstanceSpec, MaskRLE

MIN_BOX_PX = 4.0  # a smaller drag is a click, not a box
ZOOM_STEP = 1.15


class _Drag(Enum):
    NONE = auto()
    MOVE = auto()
    RESIZE = auto()
    VERTEX = auto()
    BOX = auto()
    SCRIBBLE = auto()
    PAINT = auto()
    PAN = auto()


class CanvasView(QGraphicsView):
    message = Signal(str)  # something to tell the user (status bar)
    toolChanged = Signal(str)
    brushRadiusChanged = Signal(int)

    def __init__(
        self, document: SceneDocument, undo_stack: Callable[[], QUndoStack | None], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.document = document
        self._undo_stack = undo_stack
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        # No scroll bars: the canvas pans with the middle button or space-drag, as in paint programs.
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setBackgroundBrush(QBrush(QColor("#17181a")))
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.tool = Tool.SELECT
        self.brush_radius = 12
        self._fit_mode = True  # keep fitting to the window until the user zooms
        self._space_down = False
        self._items: dict[int, InstanceItem] = {}
        self._canvas = QGraphicsRectItem()
        self._canvas.setPen(Qt.PenStyle.NoPen)
        self._canvas.setBrush(QBrush(QColor("#3a3c40")))
        self._canvas.setZValue(-20)
        self.scene().addItem(self._canvas)
        self._background = QGraphicsPixmapItem()
        self._background.setZValue(-10)
        self._background.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._background)
        self._handles = HandlesItem()
        self.scene().addItem(self._handles)
        self._rubber = QGraphicsRectItem()
        self._rubber.setZValue(900)
        self._rubber.setVisible(False)
        self.scene().addItem(self._rubber)
        self._stroke = QGraphicsPathItem()
        self._stroke.setZValue(900)
        self.scene().addItem(self._stroke)
        self._paint_overlay = QGraphicsPixmapItem()
        self._paint_overlay.setZValue(800)
        self.scene().addItem(self._paint_overlay)

        self._drag = _Drag.NONE
        self._press_scene = QPointF()
        self._press_view = QPoint()
        self._originals: list[InstanceData] = []
        self._handle_index = 0
        self._points: list[QPointF] = []
        self._polygon: list[QPointF] = []
        self._paint_target: InstanceData | None = None
        self._paint_image: QImage | None = None
        self._last_paint: QPointF | None = None
        self.caption_editor: QLineEdit | None = None

        document.sceneReplaced.connect(self._rebuild)
        document.instancesChanged.connect(self._sync_items)
        document.instanceChanged.connect(self._instance_changed)
        document.settingsChanged.connect(self._settings_changed)
        document.selectionChanged.connect(self._selection_changed)

    # --- public API ------------------------------------------------------------------------

    @property
    def canvas_size(self) -> tuple[int, int]:
        scene = self.document.scene
        return (scene.width, scene.height) if scene else (512, 512)

    def set_tool(self, tool: Tool) -> None:
        self._cancel_drawing()
        self.tool = tool
        cursor = Qt.CursorShape.ArrowCursor if tool is Tool.SELECT else Qt.CursorShape.CrossCursor
        self.viewport().setCursor(cursor)
        self.toolChanged.emit(tool.value)

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = max(1, min(200, radius))
        self.brushRadiusChanged.emit(self.brush_radius)

    def set_background(self, image: QImage | None) -> None:
        """The latest render under the instances (scaled to the canvas), or the neutral canvas."""
        if image is None or image.isNull():
            self._background.setPixmap(QPixmap())
            return
        w, h = self.canvas_size
        pixmap = QPixmap.fromImage(image)
        self._background.setPixmap(pixmap)
        self._background.setTransform(self._background.transform().fromScale(w / pixmap.width(), h / pixmap.height()))

    def fit(self) -> None:
        w, h = self.canvas_size
        margin = 0.04 * max(w, h)
        self.fitInView(QRectF(-margin, -margin, w + 2 * margin, h + 2 * margin), Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_mode = True
        self._scale_changed()

    def zoom(self, factor: float) -> None:
        self._fit_mode = False
        current = self.transform().m11()
        factor = max(0.05, min(40.0, current * factor)) / current
        self.scale(factor, factor)
        self._scale_changed()

    def item_for(self, uid: int) -> InstanceItem | None:
        return self._items.get(uid)

    def map_normalised(self, x: float, y: float) -> QPoint:
        """Where a normalised canvas point is in viewport pixels (tests and the caption editor)."""
        w, h = self.canvas_size
        return self.mapFromScene(QPointF(x * w, y * h))

    # --- keeping the items in step with the document ---------------------------------------

    def _rebuild(self) -> None:
        self._cancel_drawing()
        for item in self._items.values():
            self.scene().removeItem(item)
        self._items.clear()
        self._settings_changed()
        self._sync_items()
        w, h = self.canvas_size
        if self.brush_radius > min(w, h) / 4:  # a brush sized for 512 px would swamp a small canvas
            self.set_brush_radius(max(1, min(w, h) // 32))
        self.fit()

    def _settings_changed(self) -> None:
        w, h = self.canvas_size
        self._canvas.setRect(QRectF(0, 0, w, h))
        self.scene().setSceneRect(QRectF(-w, -h, 3 * w, 3 * h))
        pixmap = self._background.pixmap()
        if not pixmap.isNull():
            self._background.setTransform(
                self._background.transform().fromScale(w / pixmap.width(), h / pixmap.height())
            )
        self._sync_items()
        if self._fit_mode:
            self.fit()

    def _sync_items(self) -> None:
        scene = self.document.scene
        instances = scene.instances if scene else ()
        present = {inst.uid for inst in instances}
        for uid in list(self._items):
            if uid not in present:
                self.scene().removeItem(self._items.pop(uid))
        w, h = self.canvas_size
        for index, inst in enumerate(instances):
            item = self._items.get(inst.uid)
            if item is None:
                item = InstanceItem(inst, w, h, index)
                item.set_view_scale(self.transform().m11())
                self._items[inst.uid] = item
                self.scene().addItem(item)
            else:
                item.update_from(inst, w, h, index)
            item.setZValue(index)
        self._selection_changed()

    def _instance_changed(self, uid: int) -> None:
        scene = self.document.scene
        item = self._items.get(uid)
        if scene is None or item is None:
            return
        w, h = self.canvas_size
        item.update_from(scene.instances[scene.index_of(uid)], w, h, scene.index_of(uid))
        self._update_handles()

    def _selection_changed(self) -> None:
        selection = set(self.document.selection)
        for uid, item in self._items.items():
            if item.selected != (uid in selection):
                item.selected = uid in selection
                item.update()
        self._update_handles()

    def _update_handles(self) -> None:
        selected = self.document.selected()
        scale = self.transform().m11()
        if len(selected) != 1 or selected[0].locked:
            self._handles.show_for(None, [], "#ffffff", scale)
            return
        inst = selected[0]
        item = self._items.get(inst.uid)
        if item is None:
            return
        rect = None if inst.kind is InstanceKind.POINT else item.bounds_rect
        w, h = self.canvas_size
        vertices = [QPointF(x * w, y * h) for x, y in inst.spec.polygon or ()]
        self._handles.show_for(rect, vertices, inst.color, scale)

    def _scale_changed(self) -> None:
        scale = self.transform().m11()
        for item in self._items.values():
            item.set_view_scale(scale)
        self._update_handles()

    # --- edits -----------------------------------------------------------------------------

    def push(self, command: QUndoCommand) -> None:
        stack = self._undo_stack()
        if stack is None:
            command.redo()
        else:
            stack.push(command)

    def add_instance(self, spec: InstanceSpec, *, ask_caption: bool = True) -> InstanceData | None:
        scene = self.document.scene
        if scene is None:
            return None
        if len(scene.instances) >= MAX_INSTANCES:
            self.message.emit(f"A scene holds at most {MAX_INSTANCES} instances; delete one first.")
            return None
        instance = InstanceData(spec=spec, color=scene.free_color())
        self.push(
            SetInstancesCommand(
                self.document,
                scene.instances,
                (*scene.instances, instance),
                f"Add {spec.kind.value}",
                select_after=[instance.uid],
            )
        )
        if ask_caption:
            self.edit_caption(instance.uid)
        return instance

    def edit_caption(self, uid: int) -> None:
        """An inline editor over the instance: Enter keeps the caption, Esc leaves it as it was."""
        scene = self.document.scene
        item = self._items.get(uid)
        if scene is None or item is None:
            return
        self._close_caption_editor()
        editor = QLineEdit(self.viewport())
        editor.setObjectName("captionEditor")
        editor.setPlaceholderText("caption, e.g. a red circle")
        instance = scene.instances[scene.index_of(uid)]
        editor.setText(instance.caption)
        editor.selectAll()
        top_left = self.mapFromScene(item.bounds_rect.topLeft())
        editor.setGeometry(max(0, top_left.x()), max(0, top_left.y() - 30), 260, 26)
        editor.returnPressed.connect(lambda: self._commit_caption(uid, editor.text()))
        editor.show()
        editor.setFocus()
        self.caption_editor = editor

    def _commit_caption(self, uid: int, text: str) -> None:
        self._close_caption_editor()
        scene = self.document.scene
        if scene is None or scene.instance(uid) is None:
            return
        before = scene.instances[scene.index_of(uid)]
        caption = text.strip()
        if caption != before.caption:
            after = before.with_spec(dataclasses.replace(before.spec, caption=caption))
            self.push(EditInstanceCommand(self.document, before, after, "Edit caption"))
        self.setFocus()

    def _close_caption_editor(self) -> None:
        if self.caption_editor is not None:
            self.caption_editor.hide()
            self.caption_editor.deleteLater()
            self.caption_editor = None

    def delete_selected(self) -> None:
        scene = self.document.scene
        if scene is None or not self.document.selection:
            return
        gone = set(self.document.selection)
        kept = tuple(inst for inst in scene.instances if inst.uid not in gone)
        self.push(SetInstancesCommand(self.document, scene.instances, kept, f"Delete {len(gone)} instance(s)", []))

    def duplicate_selected(self) -> None:
        scene = self.document.scene
        if scene is None or not self.document.selection:
            return
        copies = [
            InstanceData(spec=translate(inst.spec, 0.03, 0.03), locked=False, color=inst.color)
            for inst in self.document.selected()
        ]
        self.insert_instances(copies, "Duplicate")

    def insert_instances(self, instances: list[InstanceData], text: str) -> None:
        """Append copies (new uids and free colours) of `instances`, as far as the slot limit allows."""
        scene = self.document.scene
        if scene is None or not instances:
            return
        room = MAX_INSTANCES - len(scene.instances)
        if room <= 0:
            self.message.emit(f"A scene holds at most {MAX_INSTANCES} instances.")
            return
        added: list[InstanceData] = []
        working = scene
        for inst in instances[:room]:
            new = InstanceData(spec=inst.spec, locked=inst.locked, color=working.free_color())
            added.append(new)
            working = dataclasses.replace(working, instances=(*working.instances, new))
        if len(instances) > room:
            self.message.emit(f"Only {room} of {len(instances)} fit: a scene holds at most {MAX_INSTANCES}.")
        self.push(
            SetInstancesCommand(
                self.document, scene.instances, working.instances, text, select_after=[i.uid for i in added]
            )
        )

    def nudge(self, dx_px: float, dy_px: float) -> None:
        movable = [inst for inst in self.document.selected() if not inst.locked]
        if not movable:
            return
        w, h = self.canvas_size
        stack = self._undo_stack()
        if stack is not None and len(movable) > 1:
            stack.beginMacro("Nudge")
        for inst in movable:
            moved = inst.with_spec(translate(inst.spec, dx_px / w, dy_px / h))
            if moved != inst:
                self.push(EditInstanceCommand(self.document, inst, moved, "Nudge"))
        if stack is not None and len(movable) > 1:
            stack.endMacro()

    def cycle_selection(self, backwards: bool = False) -> None:
        scene = self.document.scene
        if scene is None or not scene.instances:
            return
        uids = [inst.uid for inst in scene.instances]
        current = self.document.selection
        if not current:
            index = len(uids) - 1 if backwards else 0
        else:
            index = (uids.index(current[0]) + (-1 if backwards else 1)) % len(uids)
        self.document.set_selection([uids[index]])

    # --- mouse -----------------------------------------------------------------------------

    def _scene_pos(self, event: QMouseEvent) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def _normalised(self, pos: QPointF) -> tuple[float, float]:
        w, h = self.canvas_size
        return (clamp01(pos.x() / w), clamp01(pos.y() / h))

    def _instance_at(self, pos: QPointF) -> InstanceData | None:
        scene = self.document.scene
        if scene is None:
            return None
        for inst in reversed(scene.instances):  # the top-most (last slot) first
            item = self._items.get(inst.uid)
            if item is not None and item.hit(pos):
                return inst
        return None

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self.document.scene is None:
            return
        self._close_caption_editor()
        pos = self._scene_pos(event)
        self._press_scene = pos
        self._press_view = event.position().toPoint()
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_down):
            self._drag = _Drag.PAN
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            return
        if button != Qt.MouseButton.LeftButton:
            return
        if self.tool is Tool.SELECT:
            self._press_select(pos, event.modifiers())
        elif self.tool is Tool.BOX:
            self._drag = _Drag.BOX
            self._rubber.setRect(QRectF(pos, pos))
            self._rubber.setPen(QPen(QColor("#ffffff"), 1.5 / self.transform().m11(), Qt.PenStyle.DashLine))
            self._rubber.setVisible(True)
        elif self.tool is Tool.POINT:
            x, y = self._normalised(pos)
            self.add_instance(InstanceSpec(caption="", kind=InstanceKind.POINT, point=(x, y)))
        elif self.tool is Tool.SCRIBBLE:
            self._drag = _Drag.SCRIBBLE
            self._points = [pos]
            self._show_stroke(self._points, closed=False)
        elif self.tool is Tool.POLYGON:
            self._polygon.append(pos)
            self._show_stroke(self._polygon, closed=False)
        elif self.tool in (Tool.BRUSH, Tool.ERASER):
            self._start_paint(pos)

    def _press_select(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        handle = self._handles.handle_at(pos) if self._handles.isVisible() else None
        selected = self.document.selected()
        if handle is not None and len(selected) == 1:
            kind, index = handle
            self._originals = [selected[0]]
            self._handle_index = index
            self._drag = _Drag.VERTEX if kind == "vertex" else _Drag.RESIZE
            return
        hit = self._instance_at(pos)
        if hit is None:
            self.document.set_selection([])
            return
        if modifiers & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.ControlModifier):
            current = set(self.document.selection)
            current ^= {hit.uid}
            self.document.set_selection(current)
            return
        if hit.uid not in self.document.selection:
            self.document.set_selection([hit.uid])
        self._originals = [inst for inst in self.document.selected() if not inst.locked]
        self._drag = _Drag.MOVE if self._originals else _Drag.NONE
        if not self._originals:
            self.message.emit("This instance is locked; unlock it in the instance list to move it.")

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = self._scene_pos(event)
        if self._drag is _Drag.PAN:
            delta = event.position().toPoint() - self._press_view
            self._press_view = event.position().toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            self._fit_mode = False
            return
        w, h = self.canvas_size
        if self._drag is _Drag.MOVE:
            dx = (pos.x() - self._press_scene.x()) / w
            dy = (pos.y() - self._press_scene.y()) / h
            for original in self._originals:
                self.document.preview_instance(original.with_spec(translate(original.spec, dx, dy)))
        elif self._drag is _Drag.RESIZE:
            original = self._originals[0]
            box = _resized(bounds(original.spec), self._handle_index, self._normalised(pos))
            self.document.preview_instance(original.with_spec(fit_to_box(original.spec, box)))
        elif self._drag is _Drag.VERTEX:
            original = self._originals[0]
            spec = move_vertex(original.spec, self._handle_index, self._normalised(pos))
            self.document.preview_instance(original.with_spec(spec))
        elif self._drag is _Drag.BOX:
            self._rubber.setRect(QRectF(self._press_scene, pos).normalized())
        elif self._drag is _Drag.SCRIBBLE:
            self._points.append(pos)
            self._show_stroke(self._points, closed=False)
        elif self._drag is _Drag.PAINT:
            self._paint_to(pos)
        elif self.tool is Tool.POLYGON and self._polygon:
            self._show_stroke([*self._polygon, pos], closed=False)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        drag, self._drag = self._drag, _Drag.NONE
        pos = self._scene_pos(event)
        if drag is _Drag.PAN:
            self.set_tool(self.tool)
        elif drag in (_Drag.MOVE, _Drag.RESIZE, _Drag.VERTEX):
            self._commit_preview({_Drag.MOVE: "Move", _Drag.RESIZE: "Resize", _Drag.VERTEX: "Move vertex"}[drag])
        elif drag is _Drag.BOX:
            self._rubber.setVisible(False)
            rect = QRectF(self._press_scene, pos).normalized()
            if rect.width() >= MIN_BOX_PX and rect.height() >= MIN_BOX_PX:
                x0, y0 = self._normalised(rect.topLeft())
                x1, y1 = self._normalised(rect.bottomRight())
                self.add_instance(InstanceSpec(caption="", kind=InstanceKind.BOX, box=(x0, y0, x1, y1)))
        elif drag is _Drag.SCRIBBLE:
            self._stroke.setPath(QPainterPath())
            points = [self._normalised(p) for p in self._points]
            self._points = []
            if len(points) >= 2:
                scribble = resample_polyline(points)
                self.add_instance(InstanceSpec(caption="", kind=InstanceKind.SCRIBBLE, scribble=scribble))
        elif drag is _Drag.PAINT:
            self._finish_paint()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.tool is Tool.POLYGON:
            self._close_polygon()
            return
        if self.tool is Tool.SELECT:
            hit = self._instance_at(self._scene_pos(event))
            if hit is not None:
                self.edit_caption(hit.uid)

    def _commit_preview(self, text: str) -> None:
        scene = self.document.scene
        if scene is None:
            return
        changed = [
            (original, scene.instances[scene.index_of(original.uid)])
            for original in self._originals
            if scene.instance(original.uid) is not None
        ]
        changed = [(before, after) for before, after in changed if before != after]
        self._originals = []
        if not changed:
            return
        stack = self._undo_stack()
        if stack is not None and len(changed) > 1:
            stack.beginMacro(text)
        for before, after in changed:
            self.push(EditInstanceCommand(self.document, before, after, text))
        if stack is not None and len(changed) > 1:
            stack.endMacro()

    # --- drawing helpers -------------------------------------------------------------------

    def _show_stroke(self, points: list[QPointF], *, closed: bool) -> None:
        path = QPainterPath()
        if points:
            path.addPolygon(QPolygonF(points))
            if closed:
                path.closeSubpath()
        self._stroke.setPen(QPen(QColor("#ffffff"), 2.0 / self.transform().m11()))
        self._stroke.setPath(path)

    def _close_polygon(self) -> None:
        # A double-click also delivered a press: drop vertices that repeat the last one.
        vertices: list[QPointF] = []
        for p in self._polygon:
            if not vertices or (p - vertices[-1]).manhattanLength() > 1.0:
                vertices.append(p)
        self._polygon = []
        self._stroke.setPath(QPainterPath())
        if len(vertices) < 3:
            self.message.emit("A polygon needs at least 3 vertices.")
            return
        polygon = tuple(clamp_point(self._normalised(p)) for p in vertices)
        self.add_instance(InstanceSpec(caption="", kind=InstanceKind.MASK, polygon=polygon))

    def _cancel_drawing(self) -> None:
        self._polygon = []
        self._points = []
        self._stroke.setPath(QPainterPath())
        self._rubber.setVisible(False)
        if self._drag is _Drag.PAINT:
            self._paint_overlay.setPixmap(QPixmap())
            self._paint_image = None
            if self._paint_target is not None and self._paint_target.uid in self._items:
                self._items[self._paint_target.uid].setVisible(True)
        if self._drag in (_Drag.MOVE, _Drag.RESIZE, _Drag.VERTEX):
            for original in self._originals:
                self.document.preview_instance(original)
        self._originals = []
        self._drag = _Drag.NONE

    # --- mask painting ---------------------------------------------------------------------

    def _start_paint(self, pos: QPointF) -> None:
        selected = self.document.selected()
        target = selected[0] if len(selected) == 1 and selected[0].kind is InstanceKind.MASK else None
        if target is not None and target.locked:
            self.message.emit("This mask is locked.")
            return
        if target is None and self.tool is Tool.ERASER:
            self.message.emit("Select a mask to erase from.")
            return
        w, h = self.canvas_size
        image = QImage(w, h, QImage.Format.Format_RGBA8888_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        color = QColor(target.color if target else self.document.require().free_color())
        if target is not None:
            _draw_existing_mask(image, target.spec, color)
            self._items[target.uid].setVisible(False)
        self._paint_target = target
        self._paint_color = color
        self._paint_image = image
        self._last_paint = None
        self._drag = _Drag.PAINT
        self._paint_to(pos)

    def _paint_to(self, pos: QPointF) -> None:
        if self._paint_image is None:
            return
        painter = QPainter(self._paint_image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        if self.tool is Tool.ERASER:
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
        color = QColor(self._paint_color)
        color.setAlpha(140)
        pen = QPen(color, 2 * self.brush_radius, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        start = self._last_paint if self._last_paint is not None else pos
        painter.drawLine(start, pos)
        painter.end()
        self._last_paint = pos
        self._paint_overlay.setPixmap(QPixmap.fromImage(self._paint_image))

    def _finish_paint(self) -> None:
        image, target = self._paint_image, self._paint_target
        self._paint_image, self._paint_target = None, None
        self._paint_overlay.setPixmap(QPixmap())
        if target is not None and target.uid in self._items:
            self._items[target.uid].setVisible(True)
        if image is None:
            return
        bitmap = _alpha(image) > 0
        if target is None:
            if bitmap.any():
                self.add_instance(InstanceSpec(caption="", kind=InstanceKind.MASK, mask=MaskRLE.from_bitmap(bitmap)))
            return
        if not bitmap.any():
            self.message.emit("The mask is empty now; delete the instance if it should go.")
            return
        spec = dataclasses.replace(target.spec, mask=MaskRLE.from_bitmap(bitmap), polygon=None)
        self.push(EditInstanceCommand(self.document, target, target.with_spec(spec), "Paint mask"))

    # --- keys, wheel, resize ---------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        step = 10.0 if shift else 1.0
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif key == Qt.Key.Key_Escape:
            if self._polygon or self._drag is not _Drag.NONE:
                self._cancel_drawing()
            else:
                self.document.set_selection([])
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.tool is Tool.POLYGON:
            self._close_polygon()
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
        elif key == Qt.Key.Key_Left:
            self.nudge(-step, 0)
        elif key == Qt.Key.Key_Right:
            self.nudge(step, 0)
        elif key == Qt.Key.Key_Up:
            self.nudge(0, -step)
        elif key == Qt.Key.Key_Down:
            self.nudge(0, step)
        elif key == Qt.Key.Key_BracketLeft:
            self.set_brush_radius(self.brush_radius - 2)
        elif key == Qt.Key.Key_BracketRight:
            self.set_brush_radius(self.brush_radius + 2)
        elif key == Qt.Key.Key_F2 and len(self.document.selection) == 1:
            self.edit_caption(self.document.selection[0])
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.set_tool(self.tool)
        else:
            super().keyReleaseEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:
        # Tab cycles the selection on the canvas instead of leaving it.
        if self.hasFocus():
            self.cycle_selection(backwards=not next)
            return True
        return super().focusNextPrevChild(next)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom(ZOOM_STEP**steps)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if self._fit_mode:
            self.fit()


def _resized(box: Box, handle: int, to: tuple[float, float]) -> Box:
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


def _draw_existing_mask(image: QImage, spec: InstanceSpec, color: QColor) -> None:
    """Start a paint stroke from what the mask already covers (its bitmap, else its polygon)."""
    w, h = image.width(), image.height()
    fill = QColor(color)
    fill.setAlpha(140)
    painter = QPainter(image)
    if spec.mask is not None and spec.polygon is None:
        bitmap = spec.mask.decode()
        rgba = np.zeros((*bitmap.shape, 4), dtype=np.uint8)
        rgba[bitmap != 0] = (fill.red() * 140 // 255, fill.green() * 140 // 255, fill.blue() * 140 // 255, 140)
        source = QImage(rgba.data, bitmap.shape[1], bitmap.shape[0], bitmap.shape[1] * 4, image.format())
        painter.drawImage(QRectF(0, 0, w, h), source)
    elif spec.polygon:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawPolygon(QPolygonF([QPointF(x * w, y * h) for x, y in spec.polygon]))
    painter.end()


def _alpha(image: QImage) -> np.ndarray:
    """The alpha channel of an RGBA8888 image as an (h, w) array."""
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    rows = data.reshape(height, image.bytesPerLine())[:, : width * 4]
    return rows.reshape(height, width, 4)[:, :, 3].copy()
