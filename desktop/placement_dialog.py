"""Render → Placement check…: the project's thresholds for calling an instance placed. Every render is judged
by the current values when it is shown, so a change re-judges the history without rendering again."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from engine.placement_report import DEFAULT_IOU, DEFAULT_SCORE, PlacementThresholds

EXPLANATION = (
    "An instance is placed when the checker found it overlapping where the layout put it by at least the IoU "
    "below, with a label score for its caption at least as high as the score below. Changing them judges every "
    "render again; nothing is rendered again."
)


class PlacementThresholdsDialog(QDialog):
    """Two spin boxes, 0 to 1 (the spin boxes refuse anything else). Shown before the project's values arrive
    from the store's thread; they fill in with `set_thresholds`, and OK waits for them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Placement check")
        self.iou = _unit_spin_box("placementIou")
        self.iou.setToolTip("How much the region found must overlap where the layout put the instance (0 to 1)")
        self.score = _unit_spin_box("placementScore")
        self.score.setToolTip("How sure the checker must be that what it found is the caption (0 to 1)")
        about = QLabel(EXPLANATION)
        about.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        defaults = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        defaults.setToolTip(f"IoU {DEFAULT_IOU:g}, label score {DEFAULT_SCORE:g}")
        defaults.clicked.connect(lambda: self.set_thresholds(PlacementThresholds()))
        form = QFormLayout()
        form.addRow("Overlap (IoU) at least", self.iou)
        form.addRow("Label score at least", self.score)
        layout = QVBoxLayout(self)
        layout.addWidget(about)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.resize(440, self.sizeHint().height())
        self._set_loaded(False)

    def set_thresholds(self, thresholds: PlacementThresholds) -> None:
        self.iou.setValue(thresholds.iou)
        self.score.setValue(thresholds.score)
        self._set_loaded(True)

    def thresholds(self) -> PlacementThresholds:
        return PlacementThresholds(iou=self.iou.value(), score=self.score.value())

    def _set_loaded(self, loaded: bool) -> None:
        for widget in (self.iou, self.score, self.buttons.button(QDialogButtonBox.StandardButton.Ok)):
            widget.setEnabled(loaded)


def _unit_spin_box(name: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setObjectName(name)
    box.setRange(0.0, 1.0)
    box.setDecimals(2)
    box.setSingleStep(0.05)
    return box
