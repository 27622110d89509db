"""The instances a shown render missed, outlined over the canvas: a red dashed outline where the layout asked
for each one and, when the checker found it elsewhere, a thin amber box where it did. A view only: it reads
the render's history entry and never changes the scene."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsRectItem

from desktop.geometry import bounds
from engine.placement_report import Box
from engine.request import InstanceKind, InstanceSpec
from projects.scene_data import HistoryEntry

MISSED_COLOR: Final = "#ff4d4f"
FOUND_COLOR: Final = "#ffb020"
MISSED_FILL_ALPHA: Final = 60
POINT_RADIUS_PX: Final = 10
Z_VALUE: Final = 10_000  # over the instances: the outline is the point of showing them


@dataclass(frozen=True)
class MissedOutline:
    """One instance that missed: where it was asked for and where (if anywhere) the checker found it."""

    slot: int  # 0-based, in the render's request
    spec: InstanceSpec  # the requested location, as rendered
    found_box: Box | None  # normalised; None when nothing matching was found
    iou: float
    score: float

    @property
    def describe(self) -> str:
        where = f"IoU {self.iou:.2f}, label score {self.score:.2f}" if self.found_box else "not found"
        return f"#{self.slot + 1} “{self.spec.caption}”: {where}"


def missed_outlines(entry: HistoryEntry) -> tuple[MissedOutline, ...]:
    """The instances of `entry`'s render that missed by its thresholds (none when it was not checked)."""
    report, missed = entry.placement, entry.missed()
    if report is None or not missed:
        return ()
    specs = entry.request.instances
    outlines = []
    for slot in missed:
        if slot >= len(specs):  # a report longer than its request: nothing to outline
            continue
        found = report.instances[slot]
        outlines.append(MissedOutline(slot, specs[slot], found.box if found.found else None, found.iou, found.score))
    return tuple(outlines)


def legend_html(outlines: tuple[MissedOutline, ...]) -> str:
    """The canvas' legend for the outlines shown (empty when there are none)."""
    if not outlines:
        return ""
    names = " · ".join(html.escape(o.describe) for o in outlines)
    found = any(o.found_box for o in outlines)
    key = f"<span style='color:{MISSED_COLOR}'>┅┅</span> asked here, missed"
    if found:
        key += f" &nbsp; <span style='color:{FOUND_COLOR}'>▭</span> where the checker found it"
    return f"✗ {len(outlines)} missed in this render: {names}<br>{key}"


def requested_path(spec: InstanceSpec, width: int, height: int) -> QPainterPath:
    """The requested location in canvas pixels: the polygon, box, point or scribble the layout drew."""

    def at(p: tuple[float, float]) -> QPointF:
        return QPointF(p[0] * width, p[1] * height)

    path = QPainterPath()
    if spec.polygon:
        path.addPolygon(QPolygonF([at(p) for p in spec.polygon]))
        path.closeSubpath()
    elif spec.kind is InstanceKind.POINT and spec.point is not None:
        path.addEllipse(at(spec.point), POINT_RADIUS_PX, POINT_RADIUS_PX)
    elif spec.kind is InstanceKind.SCRIBBLE and spec.scribble:
        path.addPolygon(QPolygonF([at(p) for p in spec.scribble]))
    else:  # a box, or a mask drawn with the brush: its bounding box
        path.addRect(_rect(bounds(spec), width, height))
    return path


class MissedOutlinesItem(QGraphicsRectItem):
    """An invisible parent of the outlines (one child per path, each with its own tooltip)."""

    def __init__(self) -> None:
        super().__init__()
        self.setPen(Qt.PenStyle.NoPen)
        self.setZValue(Z_VALUE)
        self.outlines: tuple[MissedOutline, ...] = ()

    def show_outlines(self, outlines: tuple[MissedOutline, ...], width: int, height: int) -> None:
        scene = self.scene()
        for child in self.childItems():
            if scene is not None:
                scene.removeItem(child)  # takes it out of this item too; Python's reference frees it
        self.outlines = outlines
        for outline in outlines:
            asked = QGraphicsPathItem(requested_path(outline.spec, width, height), self)
            asked.setPen(_pen(MISSED_COLOR, 3, Qt.PenStyle.DashLine))
            tint = QColor(MISSED_COLOR)
            tint.setAlpha(MISSED_FILL_ALPHA)  # tells the miss apart from the instance's own outline under it
            asked.setBrush(tint)
            asked.setToolTip(f"Missed: {outline.describe}")
            _no_mouse(asked)
            if outline.found_box is not None:
                found = QGraphicsRectItem(_rect(outline.found_box, width, height), self)
                found.setPen(_pen(FOUND_COLOR, 1.2, Qt.PenStyle.SolidLine))
                found.setToolTip(f"Found here: {outline.describe}")
                _no_mouse(found)


def _rect(box: Box, width: int, height: int) -> QRectF:
    x0, y0, x1, y1 = box
    return QRectF(x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height)


def _pen(color: str, width: float, style: Qt.PenStyle) -> QPen:
    pen = QPen(QColor(color), width, style)
    pen.setCosmetic(True)  # the same on screen at every zoom
    return pen


def _no_mouse(item: QGraphicsItem) -> None:
    item.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
