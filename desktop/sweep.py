"""Sweeps: render one scene over seeds x alpha x mis, then look at the results side by side in a contact sheet
with the layout drawn over each image."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.until_placed import UntilPlacedOption
from engine.request import InstanceKind, RenderRequest
from projects.scene_data import INSTANCE_PALETTE

MAX_SWEEP_JOBS = 200
CELL = 256
LABEL_HEIGHT = 22


def parse_values(text: str) -> list[float]:
    """'0.5, 0.75 1' -> [0.5, 0.75, 1.0]; every value must be in [0, 1]."""
    values = [float(part) for part in text.replace(",", " ").split()]
    if not values:
        raise ValueError("give at least one value")
    bad = [v for v in values if not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"values must lie between 0 and 1, not {bad[0]}")
    return sorted(set(values))


class SweepDialog(QDialog):
    """Asks for the grid: how many seeds (the scene's own first), which alphas, which mis values."""

    def __init__(
        self,
        seed: int,
        alpha: float,
        mis: float,
        parent: QWidget | None = None,
        until_placed: UntilPlacedOption | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sweep")
        self.base_seed = seed
        self.seeds = QSpinBox()
        self.seeds.setRange(1, 50)
        self.seeds.setValue(2)
        self.alphas = QLineEdit(f"{alpha:g}, 1")
        self.mises = QLineEdit(f"0, {mis:g}")
        self.summary = QLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Seeds", self.seeds)
        form.addRow("Alpha values", self.alphas)
        form.addRow("MIS values", self.mises)
        self.until_placed = until_placed
        if until_placed is not None:  # each cell that misses an instance tries the next seeds
            form.addRow("Re-roll", until_placed)
            until_placed.check.toggled.connect(self._check)
            until_placed.count.valueChanged.connect(self._check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)
        for signal in (self.seeds.valueChanged, self.alphas.textChanged, self.mises.textChanged):
            signal.connect(self._check)
        self._check()

    def values(self) -> tuple[list[int], list[float], list[float]]:
        seeds = [self.base_seed + k for k in range(self.seeds.value())]
        return seeds, parse_values(self.alphas.text()), parse_values(self.mises.text())

    def _check(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        try:
            seeds, alphas, mises = self.values()
        except ValueError as exc:
            self.summary.setText(f"⚠ {exc}")
            ok.setEnabled(False)
            return
        count = len(seeds) * len(alphas) * len(mises)
        too_many = count > MAX_SWEEP_JOBS
        rerolls = self.until_placed.seeds() if self.until_placed is not None else 0
        more = f", up to {count * rerolls} with re-rolls" if rerolls else ""
        self.summary.setText(
            f"{count} renders{more}" + (f" (at most {MAX_SWEEP_JOBS} in one sweep)" if too_many else "")
        )
        ok.setEnabled(not too_many)


def contact_sheet(items: Sequence[tuple[QImage, RenderRequest]], columns: int = 0) -> QImage:
    """The images in a grid, each with its layout drawn over it and 'seed · alpha · mis' under it."""
    count = len(items)
    columns = columns or max(1, min(count, 4))
    rows = (count + columns - 1) // columns
    sheet = QImage(columns * CELL, rows * (CELL + LABEL_HEIGHT), QImage.Format.Format_RGB32)
    sheet.fill(QColor("#17181a"))
    painter = QPainter(sheet)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    font = QFont()
    font.setPixelSize(13)
    painter.setFont(font)
    for index, (image, request) in enumerate(items):
        x, y = (index % columns) * CELL, (index // columns) * (CELL + LABEL_HEIGHT)
        cell = QRectF(x, y, CELL, CELL)
        painter.drawImage(cell, image)
        _draw_layout(painter, request, cell)
        painter.setPen(QColor("#dcddde"))
        painter.drawText(
            QRectF(x, y + CELL, CELL, LABEL_HEIGHT),
            Qt.AlignmentFlag.AlignCenter,
            f"seed {request.seed} · α {request.alpha:g} · mis {request.mis:g}",
        )
    painter.end()
    return sheet


def _draw_layout(painter: QPainter, request: RenderRequest, cell: QRectF) -> None:
    def at(x: float, y: float) -> QPointF:
        return QPointF(cell.left() + x * cell.width(), cell.top() + y * cell.height())

    for slot, spec in enumerate(request.instances):
        color = QColor(INSTANCE_PALETTE[slot % len(INSTANCE_PALETTE)])
        painter.setPen(QPen(color, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if spec.box is not None:
            x0, y0, x1, y1 = spec.box
            painter.drawRect(QRectF(at(x0, y0), at(x1, y1)))
        if spec.point is not None and spec.kind is InstanceKind.POINT:
            painter.setBrush(color)
            painter.drawEllipse(at(*spec.point), 4, 4)
        if spec.scribble:
            painter.drawPolyline(QPolygonF([at(*p) for p in spec.scribble]))
        if spec.polygon:
            painter.drawPolygon(QPolygonF([at(*p) for p in spec.polygon]))


class ContactSheetDialog(QDialog):
    def __init__(self, sheet: QImage, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Contact sheet")
        self.sheet = sheet
        label = QLabel()
        label.setPixmap(QPixmap.fromImage(sheet))
        scroll = QScrollArea()
        scroll.setWidget(label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Save).clicked.connect(self._save)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll, 1)
        layout.addWidget(buttons)
        self.resize(min(sheet.width() + 40, 1100), min(sheet.height() + 80, 800))

    def _save(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Save contact sheet", "contact-sheet.png", "PNG (*.png)")
        if name:
            self.sheet.save(name)
