"""A/B comparison of two renders: side by side, or one image over the other with a split slider."""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QCheckBox, QDialog, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget


class SplitView(QWidget):
    """Paints `before` left of the split and `after` right of it (or both side by side)."""

    def __init__(self, before: QImage, after: QImage) -> None:
        super().__init__()
        self.before, self.after = before, after
        self.split = 0.5
        self.side_by_side = False
        self.setMinimumSize(480, 320)

    def set_split(self, value: float) -> None:
        self.split = min(1.0, max(0.0, value))
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#17181a"))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        if self.side_by_side:
            half = self.width() // 2
            painter.drawImage(_fit(self.before, QRect(0, 0, half - 4, self.height())), self.before)
            painter.drawImage(_fit(self.after, QRect(half + 4, 0, half - 4, self.height())), self.after)
            return
        target = _fit(self.before, self.rect())
        cut = target.left() + target.width() * self.split
        painter.save()
        painter.setClipRect(QRectF(target.left(), target.top(), cut - target.left(), target.height()))
        painter.drawImage(target, self.before)
        painter.restore()
        painter.save()
        painter.setClipRect(QRectF(cut, target.top(), target.right() - cut, target.height()))
        painter.drawImage(_fit(self.after, self.rect()), self.after)
        painter.restore()
        painter.setPen(QPen(QColor("white"), 2))
        painter.drawLine(int(cut), int(target.top()), int(cut), int(target.bottom()))


def _fit(image: QImage, area: QRect) -> QRectF:
    """The largest rectangle with the image's aspect ratio, centred in `area`."""
    if image.isNull() or area.isEmpty():
        return QRectF(area)
    scale = min(area.width() / image.width(), area.height() / image.height())
    w, h = image.width() * scale, image.height() * scale
    return QRectF(area.left() + (area.width() - w) / 2, area.top() + (area.height() - h) / 2, w, h)


class CompareDialog(QDialog):
    def __init__(self, before: QImage, after: QImage, labels: tuple[str, str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare renders")
        self.view = SplitView(before, after)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 1000)
        self.slider.setValue(500)
        self.slider.valueChanged.connect(lambda v: self.view.set_split(v / 1000))
        self.side = QCheckBox("Side by side")
        self.side.toggled.connect(self._side_by_side)
        row = QHBoxLayout()
        row.addWidget(QLabel(labels[0]))
        row.addWidget(self.slider, 1)
        row.addWidget(QLabel(labels[1]))
        row.addWidget(self.side)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)
        self.resize(900, 620)

    def _side_by_side(self, on: bool) -> None:
        self.view.side_by_side = on
        self.slider.setEnabled(not on)
        self.view.update()
