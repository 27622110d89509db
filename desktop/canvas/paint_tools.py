"""The brush and the eraser: paint a mask onto the selected mask instance (or a new one), or erase from
it. The stroke is drawn into an overlay image; its release becomes one undo step."""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import QGraphicsPixmapItem

from desktop.canvas.tool_base import CanvasTool, ToolHost
from engine.request import InstanceKind, InstanceSpec, MaskRLE
from projects.scene_data import InstanceData

PAINT_ALPHA = 140  # the stroke shows the instance's colour, see-through
PAINT_Z = 800


class BrushTool(CanvasTool):
    erases = False

    def __init__(self, host: ToolHost) -> None:
        super().__init__(host)
        self._overlay = QGraphicsPixmapItem()
        self._overlay.setZValue(PAINT_Z)
        host.graphics().addItem(self._overlay)
        self._image: QImage | None = None
        self._target: InstanceData | None = None
        self._color = QColor()
        self._last: QPointF | None = None

    def press(self, pos: QPointF, modifiers: Qt.KeyboardModifier) -> None:
        editor = self.editor
        selected = editor.selected()
        target = selected[0] if len(selected) == 1 and selected[0].kind is InstanceKind.MASK else None
        if target is not None and target.locked:
            editor.message.emit("This mask is locked.")
            return
        if target is None and self.erases:
            editor.message.emit("Select a mask to erase from.")
            return
        w, h = self.host.canvas_size
        image = QImage(w, h, QImage.Format.Format_RGBA8888_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        self._color = QColor(target.color if target else editor.scene.free_color())
        if target is not None:
            draw_existing_mask(image, target.spec, self._color)
            self._show_item(target.uid, False)
        self._target, self._image, self._last = target, image, None
        self.move(pos)

    def move(self, pos: QPointF) -> None:
        if self._image is None:
            return
        painter = QPainter(self._image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        if self.erases:
            painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
        color = QColor(self._color)
        color.setAlpha(PAINT_ALPHA)
        painter.setPen(QPen(color, 2 * self.host.brush_radius, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(self._last if self._last is not None else pos, pos)
        painter.end()
        self._last = pos
        self._overlay.setPixmap(QPixmap.fromImage(self._image))

    def release(self, pos: QPointF) -> None:
        image, target = self._image, self._target
        self.cancel()
        if image is None:
            return
        bitmap = alpha_channel(image) > 0
        if target is None:
            if bitmap.any():
                mask = MaskRLE.from_bitmap(bitmap)
                self.editor.add_instance(InstanceSpec(caption="", kind=InstanceKind.MASK, mask=mask))
            return
        if not bitmap.any():
            self.editor.message.emit("The mask is empty now; delete the instance if it should go.")
            return
        spec = dataclasses.replace(target.spec, mask=MaskRLE.from_bitmap(bitmap), polygon=None)
        self.editor.replace_spec(target.uid, spec, "Erase mask" if self.erases else "Paint mask")

    @property
    def busy(self) -> bool:
        return self._image is not None

    def cancel(self) -> None:
        if self._target is not None:
            self._show_item(self._target.uid, True)
        self._image, self._target, self._last = None, None, None
        self._overlay.setPixmap(QPixmap())

    def _show_item(self, uid: int, visible: bool) -> None:
        item = self.host.item_for(uid)
        if item is not None:
            item.setVisible(visible)


class EraserTool(BrushTool):
    erases = True


def draw_existing_mask(image: QImage, spec: InstanceSpec, color: QColor) -> None:
    """Start a paint stroke from what the mask already covers (its bitmap, else its polygon)."""
    w, h = image.width(), image.height()
    fill = QColor(color)
    fill.setAlpha(PAINT_ALPHA)
    painter = QPainter(image)
    if spec.mask is not None and spec.polygon is None:
        bitmap = spec.mask.decode()
        rgba = np.zeros((*bitmap.shape, 4), dtype=np.uint8)
        premultiplied = [c * PAINT_ALPHA // 255 for c in (fill.red(), fill.green(), fill.blue())]
        rgba[bitmap != 0] = (*premultiplied, PAINT_ALPHA)
        source = QImage(rgba.data, bitmap.shape[1], bitmap.shape[0], bitmap.shape[1] * 4, image.format())
        painter.drawImage(QRectF(0, 0, w, h), source)
    elif spec.polygon:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawPolygon(QPolygonF([QPointF(x * w, y * h) for x, y in spec.polygon]))
    painter.end()


def alpha_channel(image: QImage) -> np.ndarray:
    """The alpha channel of an RGBA8888 image as an (h, w) array."""
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    rows = data.reshape(height, image.bytesPerLine())[:, : width * 4]
    return rows.reshape(height, width, 4)[:, :, 3].copy()
