"""The canvas: the scene at its aspect ratio, the latest render underneath, instances on top, and tools.

The view shows the current scene editor's document and redraws on its signals. It owns navigation
(zoom, pan), the items and the inline caption editor; what a press means is up to the active tool
(`desktop.canvas.select_tool`, `shape_tools`, `paint_tools`), and every change goes through the editor.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QImage, QKeyEvent, QMouseEvent, QPainter, QPixmap, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsRectItem, QGraphicsScene, QGraphicsView, QWidget

from desktop.canvas.caption_editor import CaptionEditor
from desktop.canvas.items import HandlesItem, InstanceItem
from desktop.canvas.missed_outlines import MissedOutline, MissedOutlinesItem, legend_html
from desktop.canvas.overlay import CanvasOverlay
from desktop.canvas.paint_tools import BrushTool, EraserTool
from desktop.canvas.select_tool import SelectTool
from desktop.canvas.shape_tools import BoxTool, PointTool, PolygonTool, ScribbleTool
from desktop.canvas.tool_base import CanvasTool
from desktop.canvas.tools import Tool
from desktop.editor.connections import Connections
from desktop.editor.scene_editor import SceneEditor
from desktop.geometry import Point, clamp01
from engine.request import InstanceKind
from projects.scene_data import InstanceData

ZOOM_STEP = 1.15
NUDGE_PX, NUDGE_SHIFT_PX = 1.0, 10.0
TOOL_CLASSES: dict[Tool, type[CanvasTool]] = {
    Tool.SELECT: SelectTool,
    Tool.BOX: BoxTool,
    Tool.POINT: PointTool,
    Tool.SCRIBBLE: ScribbleTool,
    Tool.POLYGON: PolygonTool,
    Tool.BRUSH: BrushTool,
    Tool.ERASER: EraserTool,
}


class CanvasView(QGraphicsView):
    message = Signal(str)  # something to tell the user (status bar)
    toolChanged = Signal(str)
    brushRadiusChanged = Signal(int)
    backgroundSet = Signal()  # a render was put under the instances (it replaces a live preview)
    previewShown = Signal(bool)  # a live preview is over the render, or no longer

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._editor: SceneEditor | None = None
        self._links = Connections()
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

        self.brush_radius = 12
        self.caption_colors = True
        self._fit_mode = True  # keep fitting to the window until the user zooms
        self._space_down = False
        self._panning = False
        self._pan_from = QPoint()
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
        # A live preview lies over the latest render (still under the instances): dropping it shows the render again.
        self._preview = QGraphicsPixmapItem()
        self._preview.setZValue(-9)
        self._preview.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self._preview)
        self._handles = HandlesItem()
        self.scene().addItem(self._handles)
        # The instances the render shown missed (its placement check), until the scene is edited.
        self._missed = MissedOutlinesItem()
        self.scene().addItem(self._missed)
        self._missed_render: int | None = None
        self.missed_legend = CanvasOverlay(self, bottom=True, object_name="missedLegend")
        self.missed_legend.setStyleSheet(
            "QLabel#missedLegend { background: rgba(60, 20, 20, 225); color: #ffe3e3; padding: 5px 10px;"
            " border-radius: 4px; }"
        )
        self.caption_editor: CaptionEditor | None = None
        self._tools = {tool: cls(self) for tool, cls in TOOL_CLASSES.items()}
        self.tool = Tool.SELECT

    # --- the scene shown -------------------------------------------------------------------

    @property
    def editor(self) -> SceneEditor | None:
        return self._editor

    def set_editor(self, editor: SceneEditor | None) -> None:
        """Show another scene (or none): its items, its selection, fitted to the window."""
        self._cancel_drawing()
        self._close_caption_editor()
        self._links.clear()
        self._editor = editor
        if editor is not None:
            document = editor.document
            self._links.connect(document.instancesChanged, self._sync_items)
            self._links.connect(document.instanceChanged, self._instance_changed)
            self._links.connect(document.settingsChanged, self._settings_changed)
            self._links.connect(document.selectionChanged, self._selection_changed)
            self._links.connect(editor.captionWanted, self.edit_caption)
            self._links.connect(editor.message, self.message.emit)
            # An edit makes the outlines of what a render missed out of date: they go at its first change.
            for changed in (document.instancesChanged, document.instanceChanged, document.settingsChanged):
                self._links.connect(changed, self.clear_missed)
        # The outlines stay: the session clears the background (and them) when it switches scenes, and the
        # new scene's render and history may arrive before its editor does.
        self._rebuild()

    @property
    def canvas_size(self) -> tuple[int, int]:
        editor = self._editor
        return (editor.scene.width, editor.scene.height) if editor else (512, 512)

    # --- tools and navigation --------------------------------------------------------------

    @property
    def active_tool(self) -> CanvasTool:
        return self._tools[self.tool]

    def set_tool(self, tool: Tool) -> None:
        self._cancel_drawing()
        self.tool = tool
        self._update_cursor()
        self.toolChanged.emit(tool.value)

    def set_caption_colors(self, on: bool) -> None:
        """Outline instances in the colour their caption names (else their slot colour)."""
        self.caption_colors = on
        for item in self._items.values():
            item.caption_colors = on
            item.update()
        self._update_handles()

    def set_brush_radius(self, radius: int) -> None:
        self.brush_radius = max(1, min(200, radius))
        self.brushRadiusChanged.emit(self.brush_radius)

    def set_background(self, image: QImage | None) -> None:
        """The latest render under the instances (scaled to the canvas), or the neutral canvas; it replaces a
        live preview."""
        self.set_preview(None)
        self.clear_missed()  # they belonged to the render shown before
        pixmap = QPixmap() if image is None or image.isNull() else QPixmap.fromImage(image)
        self._background.setPixmap(pixmap)
        self._scale_background()
        self.backgroundSet.emit()

    def set_preview(self, image: QImage | None) -> None:
        """A live preview over the render (scaled to the canvas), or none (the render shows again)."""
        shown = image is not None and not image.isNull()
        had = self.has_preview
        self._preview.setPixmap(QPixmap.fromImage(image) if shown and image is not None else QPixmap())
        self._scale_background()
        if shown != had:
            self.previewShown.emit(shown)

    def show_missed(self, render_id: int, outlines: tuple[MissedOutline, ...]) -> None:
        """Outline what the render shown (`render_id`, now the background) missed; none when all landed."""
        w, h = self.canvas_size
        self._missed_render = render_id
        self._missed.show_outlines(outlines, w, h)
        self.missed_legend.show_text(legend_html(outlines))

    def clear_missed(self) -> None:
        if self._missed_render is None and not self._missed.outlines:
            return
        self._missed_render = None
        self._missed.show_outlines((), *self.canvas_size)
        self.missed_legend.show_text("")

    @property
    def missed_render(self) -> int | None:
        """The render whose placement check the canvas shows (None: none shown, or the scene was edited since)."""
        return self._missed_render

    @property
    def missed_shown(self) -> tuple[MissedOutline, ...]:
        return self._missed.outlines

    @property
    def has_preview(self) -> bool:
        return not self._preview.pixmap().isNull()

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

    def nudge(self, dx_px: float, dy_px: float) -> None:
        """Move the selection by canvas pixels (the arrow keys)."""
        if self._editor is not None:
            w, h = self.canvas_size
            self._editor.nudge(dx_px / w, dy_px / h)

    # --- what tools ask of the canvas (ToolHost) -------------------------------------------

    def graphics(self) -> QGraphicsScene:
        return self.scene()

    def view_scale(self) -> float:
        return self.transform().m11()

    def normalised(self, pos: QPointF) -> Point:
        w, h = self.canvas_size
        return (clamp01(pos.x() / w), clamp01(pos.y() / h))

    def instance_at(self, pos: QPointF) -> InstanceData | None:
        if self._editor is None:
            return None
        for inst in reversed(self._editor.scene.instances):  # the top-most (last slot) first
            item = self._items.get(inst.uid)
            if item is not None and item.hit(pos):
                return inst
        return None

    def handle_at(self, pos: QPointF) -> tuple[str, int] | None:
        return self._handles.handle_at(pos) if self._handles.isVisible() else None

    def item_for(self, uid: int) -> InstanceItem | None:
        return self._items.get(uid)

    def map_normalised(self, x: float, y: float) -> QPoint:
        """Where a normalised canvas point is in viewport pixels (tests and the caption editor)."""
        w, h = self.canvas_size
        return self.mapFromScene(QPointF(x * w, y * h))

    def edit_caption(self, uid: int) -> None:
        """Type the caption in place over the instance (see `CaptionEditor`)."""
        editor, item = self._editor, self._items.get(uid)
        typing = editor.begin_caption(uid) if editor is not None and item is not None else None
        if item is None or typing is None:
            return
        self._close_caption_editor()
        line = CaptionEditor(typing, self.viewport())
        top_left = self.mapFromScene(item.bounds_rect.topLeft())
        line.setGeometry(max(0, top_left.x()), max(0, top_left.y() - 30), 260, 26)
        line.finished.connect(lambda: self._caption_finished(line))
        line.show()
        line.setFocus(Qt.FocusReason.OtherFocusReason)
        self.caption_editor = line

    def _caption_finished(self, line: CaptionEditor) -> None:
        if self.caption_editor is line:
            self.caption_editor = None
            line.hide()
            line.deleteLater()
            self.setFocus()

    def _close_caption_editor(self) -> None:
        """Keep what was typed so far (the user moved on), and close the editor."""
        if self.caption_editor is not None:
            self.caption_editor.keep()

    # --- keeping the items in step with the document ---------------------------------------

    def _rebuild(self) -> None:
        for item in self._items.values():
            self.scene().removeItem(item)
        self._items.clear()
        self._settings_changed()
        w, h = self.canvas_size
        if self.brush_radius > min(w, h) / 4:  # a brush sized for 512 px would swamp a small canvas
            self.set_brush_radius(max(1, min(w, h) // 32))
        self.fit()

    def _settings_changed(self) -> None:
        w, h = self.canvas_size
        self._canvas.setRect(QRectF(0, 0, w, h))
        self.scene().setSceneRect(QRectF(-w, -h, 3 * w, 3 * h))
        self._scale_background()
        self._sync_items()
        if self._fit_mode:
            self.fit()

    def _scale_background(self) -> None:
        w, h = self.canvas_size
        for item in (self._background, self._preview):
            pixmap = item.pixmap()
            if not pixmap.isNull():
                item.setTransform(item.transform().fromScale(w / pixmap.width(), h / pixmap.height()))

    def _sync_items(self) -> None:
        instances = self._editor.scene.instances if self._editor else ()
        present = {inst.uid for inst in instances}
        for uid in list(self._items):
            if uid not in present:
                self.scene().removeItem(self._items.pop(uid))
        w, h = self.canvas_size
        for index, inst in enumerate(instances):
            item = self._items.get(inst.uid)
            if item is None:
                item = InstanceItem(inst, w, h, index)
                item.caption_colors = self.caption_colors
                item.set_view_scale(self.transform().m11())
                self._items[inst.uid] = item
                self.scene().addItem(item)
            else:
                item.update_from(inst, w, h, index)
            item.setZValue(index)
        self._selection_changed()

    def _instance_changed(self, uid: int) -> None:
        item = self._items.get(uid)
        if self._editor is None or item is None or self._editor.scene.instance(uid) is None:
            return
        scene = self._editor.scene
        w, h = self.canvas_size
        index = scene.index_of(uid)
        item.update_from(scene.instances[index], w, h, index)
        self._update_handles()

    def _selection_changed(self) -> None:
        selection = set(self._editor.selection) if self._editor else set()
        for uid, item in self._items.items():
            if item.selected != (uid in selection):
                item.selected = uid in selection
                item.update()
        self._update_handles()

    def _update_handles(self) -> None:
        selected = self._editor.selected() if self._editor else []
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
        self._handles.show_for(rect, vertices, item.display_color, scale)

    def _scale_changed(self) -> None:
        scale = self.transform().m11()
        for item in self._items.values():
            item.set_view_scale(scale)
        self._update_handles()

    def _cancel_drawing(self) -> None:
        self.active_tool.cancel()

    def _update_cursor(self) -> None:
        if self._panning:
            cursor = Qt.CursorShape.ClosedHandCursor
        elif self._space_down:
            cursor = Qt.CursorShape.OpenHandCursor
        else:
            cursor = Qt.CursorShape.ArrowCursor if self.tool is Tool.SELECT else Qt.CursorShape.CrossCursor
        self.viewport().setCursor(cursor)

    # --- mouse: navigation here, everything else to the active tool ------------------------

    def _scene_pos(self, event: QMouseEvent) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if self._editor is None:
            return
        self._close_caption_editor()
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_down):
            self._panning = True
            self._pan_from = event.position().toPoint()
            self._update_cursor()
        elif button == Qt.MouseButton.LeftButton:
            self.active_tool.press(self._scene_pos(event), event.modifiers())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._panning:
            delta = event.position().toPoint() - self._pan_from
            self._pan_from = event.position().toPoint()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - delta.x())
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - delta.y())
            self._fit_mode = False
        elif self._editor is not None:
            self.active_tool.move(self._scene_pos(event))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning:
            self._panning = False
            self._update_cursor()
        elif self._editor is not None and event.button() == Qt.MouseButton.LeftButton:
            self.active_tool.release(self._scene_pos(event))

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self._editor is not None:
            self.active_tool.double_click(self._scene_pos(event))

    # --- keys, wheel, resize ---------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = Qt.Key(event.key())
        step = NUDGE_SHIFT_PX if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else NUDGE_PX
        editor = self._editor
        arrows = {
            Qt.Key.Key_Left: (-step, 0.0),
            Qt.Key.Key_Right: (step, 0.0),
            Qt.Key.Key_Up: (0.0, -step),
            Qt.Key.Key_Down: (0.0, step),
        }
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self._update_cursor()
        elif key == Qt.Key.Key_BracketLeft:
            self.set_brush_radius(self.brush_radius - 2)
        elif key == Qt.Key.Key_BracketRight:
            self.set_brush_radius(self.brush_radius + 2)
        elif editor is None:
            super().keyPressEvent(event)
        elif key == Qt.Key.Key_Escape:
            if self.active_tool.busy:
                self.active_tool.cancel()
            else:
                editor.set_selection([])
        elif self.active_tool.key(key):
            pass
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            editor.delete_selected()
        elif key in arrows:
            self.nudge(*arrows[key])
        elif key == Qt.Key.Key_F2 and len(editor.selection) == 1:
            self.edit_caption(editor.selection[0])
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._update_cursor()
        else:
            super().keyReleaseEvent(event)

    def focusNextPrevChild(self, next: bool) -> bool:
        # Tab cycles the selection on the canvas instead of leaving it.
        if self.hasFocus() and self._editor is not None:
            self._editor.cycle_selection(backwards=not next)
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
