"""How instances look on the canvas: one graphics item per instance, drawn from its plain data.

Items are views only. They never change the scene: the canvas' tools read where the user pressed and
push undo commands. Scene coordinates are canvas pixels (normalised x width, y height).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from desktop.canvas.colors import caption_color
from desktop.geometry import bounds
from engine.request import InstanceKind, MaskRLE
from projects.scene_data import InstanceData

FILL_ALPHA = 48
LABEL_FONT_PX = 13


def scene_rect(box: tuple[float, float, float, float], width: int, height: int) -> QRectF:
    x0, y0, x1, y1 = box
    return QRectF(x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height)


@lru_cache(maxsize=64)
def mask_image(mask: MaskRLE, color: str) -> QImage:
    """The mask as a translucent colour image at the mask's own resolution (cached: decoding costs)."""
    bitmap = mask.decode()
    rgba = np.zeros((*bitmap.shape, 4), dtype=np.uint8)
    c = QColor(color)
    rgba[bitmap != 0] = (c.red(), c.green(), c.blue(), 110)
    height, width = bitmap.shape
    image = QImage(rgba.data, width, height, width * 4, QImage.Format.Format_RGBA8888)
    return image.copy()  # own the pixels: `rgba` goes away


class InstanceItem(QGraphicsItem):
    def __init__(self, instance: InstanceData, width: int, height: int, index: int) -> None:
        super().__init__()
        self.instance = instance
        self.canvas_size = (width, height)
        self.index = index
        self.selected = False
        self.caption_colors = True  # outline in the caption's colour when it names one
        self.view_scale = 1.0  # view pixels per scene pixel, so markers and labels keep their screen size
        self._cache()

    def update_from(self, instance: InstanceData, width: int, height: int, index: int) -> None:
        self.prepareGeometryChange()
        self.instance = instance
        self.canvas_size = (width, height)
        self.index = index
        self._cache()
        self.update()

    def set_view_scale(self, scale: float) -> None:
        if scale != self.view_scale:
            self.prepareGeometryChange()
            self.view_scale = scale
            self._cache()

    def _px(self, x: float, y: float) -> QPointF:
        w, h = self.canvas_size
        return QPointF(x * w, y * h)

    def _cache(self) -> None:
        spec = self.instance.spec
        w, h = self.canvas_size
        self.bounds_rect = scene_rect(bounds(spec), w, h)
        path = QPainterPath()
        if spec.kind is InstanceKind.BOX and spec.box is not None:
            path.addRect(scene_rect(spec.box, w, h))
        elif spec.kind is InstanceKind.POINT and spec.point is not None:
            radius = 7.0 / self.view_scale
            path.addEllipse(self._px(*spec.point), radius, radius)
        elif spec.kind is InstanceKind.SCRIBBLE and spec.scribble:
            line = QPainterPath(self._px(*spec.scribble[0]))
            for p in spec.scribble[1:]:
                line.lineTo(self._px(*p))
            stroker = QPainterPathStroker()
            stroker.setWidth(10.0 / self.view_scale)
            stroker.setCapStyle(Qt.PenCapStyle.RoundCap)
            path = stroker.createStroke(line)
            self.line = line
        elif spec.kind is InstanceKind.MASK and spec.polygon:
            path.addPolygon(QPolygonF([self._px(*p) for p in spec.polygon]))
            path.closeSubpath()
        else:
            path.addRect(self.bounds_rect)  # a bitmap mask is picked by its bounds
        self.hit_path = path
        margin = 12.0 / self.view_scale
        self.label_rect = self._label_rect()
        self._rect = (
            path.boundingRect()
            .united(self.bounds_rect)
            .united(self.label_rect)
            .adjusted(-margin, -margin, margin, margin)
        )

    @property
    def display_color(self) -> str:
        """The caption's colour when it names one (and that is wanted), else the slot colour."""
        named = caption_color(self.instance.caption) if self.caption_colors else None
        return named or self.instance.color

    def _label_text(self) -> str:
        caption = self.instance.caption or "(no caption)"
        return f"{self.index + 1}  {caption}"

    def _label_rect(self) -> QRectF:
        font = QFont()
        font.setPixelSize(LABEL_FONT_PX)
        metrics = QFontMetricsF(font)
        text_w = min(metrics.horizontalAdvance(self._label_text()), 260.0) + 10
        text_h = metrics.height() + 4
        scale = 1.0 / self.view_scale
        anchor = self.bounds_rect.topLeft()
        if self.instance.kind is InstanceKind.POINT:
            anchor += QPointF(9 * scale, -9 * scale)
        top = anchor.y() - text_h * scale
        if top < 0:  # keep the label on the canvas: inside the shape when it touches the top
            top = anchor.y()
        return QRectF(anchor.x(), top, text_w * scale, text_h * scale)

    # --- QGraphicsItem -----------------------------------------------------------------------

    def boundingRect(self) -> QRectF:
        return self._rect

    def shape(self) -> QPainterPath:
        return self.hit_path

    def hit(self, pos: QPointF) -> bool:
        return self.hit_path.contains(pos) or self.label_rect.contains(pos)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        spec = self.instance.spec
        color = QColor(self.display_color)
        fill = QColor(color)
        fill.setAlpha(FILL_ALPHA if not self.selected else FILL_ALPHA + 32)
        pen = QPen(color, (3.0 if self.selected else 2.0) / self.view_scale)
        pen.setCosmetic(False)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        w, h = self.canvas_size
        if spec.kind is InstanceKind.MASK and spec.mask is not None and not spec.polygon:
            painter.drawImage(QRectF(0, 0, w, h), mask_image(spec.mask, self.display_color))
            outline = QPen(color, 1.0 / self.view_scale, Qt.PenStyle.DashLine)
            painter.setPen(outline)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self.bounds_rect)
        elif spec.kind is InstanceKind.SCRIBBLE and spec.scribble:
            stroke = QPen(color, 4.0 / self.view_scale, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
            stroke.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            painter.setPen(stroke)
            painter.drawPath(self.line)
            painter.setBrush(QBrush(color))
            painter.setPen(Qt.PenStyle.NoPen)
            for p in spec.scribble:
                painter.drawEllipse(self._px(*p), 2.2 / self.view_scale, 2.2 / self.view_scale)
        elif spec.kind is InstanceKind.POINT and spec.point is not None:
            centre = self._px(*spec.point)
            painter.setPen(QPen(QColor("white"), 2.0 / self.view_scale))
            painter.setBrush(QBrush(color))
            painter.drawEllipse(centre, 6.0 / self.view_scale, 6.0 / self.view_scale)
        else:
            painter.setPen(pen)
            painter.setBrush(QBrush(fill))
            painter.drawPath(self.hit_path)
        if self.selected and spec.kind is not InstanceKind.BOX:
            painter.setPen(QPen(color, 1.0 / self.view_scale, Qt.PenStyle.DashLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self.bounds_rect)
        self._paint_label(painter, color)

    def _paint_label(self, painter: QPainter, color: QColor) -> None:
        rect = self.label_rect
        background = QColor(color)
        background.setAlpha(235)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(background)
        radius = 3.0 / self.view_scale
        painter.drawRoundedRect(rect, radius, radius)
        font = QFont()
        font.setPixelSize(LABEL_FONT_PX)
        painter.save()
        painter.translate(rect.topLeft())
        painter.scale(1.0 / self.view_scale, 1.0 / self.view_scale)
        painter.setFont(font)
        text = QColor("#111111") if color.lightnessF() > 0.6 else QColor("white")
        painter.setPen(text)
        inner = QRectF(5, 0, rect.width() * self.view_scale - 10, rect.height() * self.view_scale)
        elided = QFontMetricsF(font).elidedText(self._label_text(), Qt.TextElideMode.ElideRight, inner.width())
        painter.drawText(inner, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided)
        painter.restore()


class HandlesItem(QGraphicsItem):
    """Resize handles around the selected instance (and its polygon's vertices), in screen-sized squares."""

    SIZE = 9.0  # view pixels

    def __init__(self) -> None:
        super().__init__()
        self.rect = QRectF()
        self.vertices: list[QPointF] = []
        self.view_scale = 1.0
        self.color = QColor("white")
        self.setZValue(1000)

    def show_for(self, rect: QRectF | None, vertices: list[QPointF], color: str, view_scale: float) -> None:
        self.prepareGeometryChange()
        self.rect = QRectF() if rect is None else QRectF(rect)
        self.vertices = vertices
        self.color = QColor(color)
        self.view_scale = view_scale
        self.setVisible(rect is not None or bool(vertices))
        self.update()

    def corner_points(self) -> list[QPointF]:
        """The 8 resize handles: corners then edge midpoints, clockwise from the top-left."""
        if self.rect.isNull():
            return []
        r = self.rect
        cx, cy = r.center().x(), r.center().y()
        return [
            r.topLeft(),
            QPointF(cx, r.top()),
            r.topRight(),
            QPointF(r.right(), cy),
            r.bottomRight(),
            QPointF(cx, r.bottom()),
            r.bottomLeft(),
            QPointF(r.left(), cy),
        ]

    def handle_at(self, pos: QPointF) -> tuple[str, int] | None:
        """("vertex", i) or ("resize", i) under `pos`, vertices first (they are the finer control)."""
        reach = self.SIZE / self.view_scale
        for i, p in enumerate(self.vertices):
            if abs(p.x() - pos.x()) <= reach and abs(p.y() - pos.y()) <= reach:
                return ("vertex", i)
        for i, p in enumerate(self.corner_points()):
            if abs(p.x() - pos.x()) <= reach and abs(p.y() - pos.y()) <= reach:
                return ("resize", i)
        return None

    def boundingRect(self) -> QRectF:
        pad = 2 * self.SIZE / self.view_scale
        rect = QRectF(self.rect)
        for p in self.vertices:
            rect = rect.united(QRectF(p, p))
        return rect.adjusted(-pad, -pad, pad, pad)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        half = self.SIZE / 2 / self.view_scale
        painter.setPen(QPen(QColor("#111111"), 1.0 / self.view_scale))
        painter.setBrush(QColor("white"))
        for p in self.corner_points():
            painter.drawRect(QRectF(p.x() - half, p.y() - half, 2 * half, 2 * half))
        painter.setBrush(self.color)
        for p in self.vertices:
            painter.drawEllipse(p, half, half)
