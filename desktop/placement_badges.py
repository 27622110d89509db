"""What a render's placement check looks like in the history strip: a badge on its thumbnail ("all placed",
"k missed"), a star on the best render of a re-roll chain, and a tooltip naming the instances that missed.

Each history entry carries its report and the project's thresholds as read with it, so everything here is
judged by the thresholds current when the history was loaded (a change reloads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPainterPath, QPen, QPixmap

from projects.scene_data import HistoryEntry

PLACED_COLOR: Final = "#2e9d4f"
SOME_MISSED_COLOR: Final = "#d9901a"  # amber: some instances landed
ALL_MISSED_COLOR: Final = "#d23f3f"  # red: none did
STAR_COLOR: Final = "#ffd34d"


@dataclass(frozen=True)
class Badge:
    text: str  # "all placed" or "2 missed"
    color: str


def badge(entry: HistoryEntry) -> Badge | None:
    """The badge of a checked render; None when it was not checked."""
    missed = entry.missed()
    if missed is None or entry.placement is None:
        return None
    if not missed:
        return Badge("all placed", PLACED_COLOR)
    every = len(missed) == len(entry.placement.instances)
    return Badge(f"{len(missed)} missed", ALL_MISSED_COLOR if every else SOME_MISSED_COLOR)


def placement_tooltip(entry: HistoryEntry) -> str:
    """The check in words: the verdict, then each instance that missed by caption with its figures."""
    report, missed = entry.placement, entry.missed()
    if report is None or missed is None:
        return ""
    limits = entry.thresholds
    lines = [
        f"Placement ({report.checker}; IoU ≥ {limits.iou:g}, label score ≥ {limits.score:g}): {report.summary(limits)}"
    ]
    for slot in missed:
        inst = report.instances[slot]
        caption = entry.request.instances[slot].caption if slot < len(entry.request.instances) else "?"
        if inst.found:
            lines.append(f"✗ #{slot + 1} “{caption}”: IoU {inst.iou:.2f}, score {inst.score:.2f}")
        else:
            lines.append(f"✗ #{slot + 1} “{caption}”: not found")
    if entry.best_of_chain:
        lines.append("★ the best render of its re-roll chain")
    return "\n".join(lines)


def badged_thumbnail(png: bytes, size: int, mark: Badge | None, star: bool, pixel_ratio: float = 1.0) -> QIcon:
    """The thumbnail scaled to `size` (logical pixels; sharp at `pixel_ratio`), with the badge in its
    bottom-left corner and the star top right."""
    image = QImage.fromData(png)
    if image.isNull():
        return QIcon()
    device = round(size * pixel_ratio)
    scaled = image.scaled(
        device, device, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
    )
    scaled.setDevicePixelRatio(pixel_ratio)
    canvas = QPixmap(device, device)
    canvas.setDevicePixelRatio(pixel_ratio)
    canvas.fill(Qt.GlobalColor.transparent)
    painter = QPainter(canvas)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    width, height = scaled.width() / pixel_ratio, scaled.height() / pixel_ratio  # painted in logical pixels
    image_rect = QRectF((size - width) / 2, (size - height) / 2, width, height)
    painter.drawImage(image_rect.topLeft(), scaled)
    if mark is not None:
        _paint_badge(painter, mark, image_rect)
    if star:
        _paint_star(painter, image_rect)
    painter.end()
    return QIcon(canvas)


def _paint_badge(painter: QPainter, mark: Badge, image: QRectF) -> None:
    font = QFont()
    font.setPixelSize(10)
    font.setBold(True)
    painter.setFont(font)
    # A check mark alone says "all placed" on a 64 px thumbnail; a miss needs its count.
    text = "✓" if mark.color == PLACED_COLOR else mark.text
    width = painter.fontMetrics().horizontalAdvance(text) + 8
    pill = QRectF(image.left() + 2, image.bottom() - 16, max(width, 16), 14)
    painter.setPen(QPen(QColor(0, 0, 0, 160), 1))
    painter.setBrush(QColor(mark.color))
    painter.drawRoundedRect(pill, 7, 7)
    painter.setPen(QColor("white"))
    painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)


def _paint_star(painter: QPainter, image: QRectF) -> None:
    font = QFont()
    font.setPixelSize(16)
    painter.setFont(font)
    box = QRectF(image.right() - 18, image.top() + 1, 17, 17)
    path = QPainterPath()
    path.addText(box.left() + 1, box.bottom() - 3, font, "★")
    painter.setPen(QPen(QColor(0, 0, 0, 200), 1.5))
    painter.setBrush(QColor(STAR_COLOR))
    painter.drawPath(path)
