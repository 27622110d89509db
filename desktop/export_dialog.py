"""The export dialog: what to export, in which format, where; it runs on its own thread with a progress bar
and a Cancel button, and says in words what went wrong (a full disk, a folder in the way)."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from projects.database import Project
from projects.errors import ProjectError
from projects.export import DEFAULT_TEMPLATE, ExportCancelled, ExportOptions, ExportReport, export_project


class _Bridge(QObject):
    progress = Signal(int, int)
    finished = Signal(object)  # ExportReport
    failed = Signal(str)


class ExportDialog(QDialog):
    def __init__(
        self,
        project: Project,
        scene_ids: list[int],
        render_ids: list[int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.project = project
        self.scene_ids = scene_ids
        self.render_ids = render_ids
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self.report: ExportReport | None = None
        self.error: str | None = None
        self._bridge = _Bridge()
        self._bridge.progress.connect(self._progress)
        self._bridge.finished.connect(self._finished)
        self._bridge.failed.connect(self._failed)

        self.format = QComboBox()
        self.format.addItem("Images (PNG with metadata)", "images")
        self.format.addItem("COCO dataset", "coco")
        self.format.addItem("YOLO dataset", "yolo")
        self.which = QComboBox()
        self.which.addItem(f"Latest render of the chosen scenes ({len(scene_ids)})", "latest")
        self.which.addItem("All renders of the chosen scenes", "all")
        if render_ids:
            self.which.addItem(f"The renders selected in the history ({len(render_ids)})", "selected")
        self.template = QLineEdit(DEFAULT_TEMPLATE)
        self.template.setToolTip("Fields: {project} {scene} {seed} {index} {date}")
        self.sidecar = QCheckBox("JSON layout beside each image")
        self.annotated = QCheckBox("Previews with the layout drawn over")
        self.segments = QCheckBox("YOLO: segmentation polygons")
        self.zip = QCheckBox("One zip file")
        self.out = QLineEdit()
        self.out.setPlaceholderText("a new or empty folder (or a .zip file)")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose)
        out_row = QHBoxLayout()
        out_row.addWidget(self.out, 1)
        out_row.addWidget(browse)
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self._cancel_or_close)

        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("What", self.which)
        form.addRow("File names", self.template)
        form.addRow("", self.sidecar)
        form.addRow("", self.annotated)
        form.addRow("", self.segments)
        form.addRow("", self.zip)
        form.addRow("Into", out_row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()

    def _format_changed(self) -> None:
        self.segments.setEnabled(self.format.currentData() == "yolo")

    def _choose(self) -> None:
        if self.zip.isChecked():
            name, _ = QFileDialog.getSaveFileName(self, "Export to", "export.zip", "Zip (*.zip)")
        else:
            name = QFileDialog.getExistingDirectory(self, "Export into")
        if name:
            self.out.setText(name)

    def options(self) -> ExportOptions:
        which = self.which.currentData()
        return ExportOptions(
            format=self.format.currentData(),
            which="all" if which == "all" else "latest",
            render_ids=tuple(self.render_ids) if which == "selected" else None,
            scenes=None if which == "selected" else tuple(self.scene_ids),
            template=self.template.text() or DEFAULT_TEMPLATE,
            sidecar=self.sidecar.isChecked(),
            annotated=self.annotated.isChecked(),
            zip=self.zip.isChecked(),
            segments=self.segments.isChecked() and self.format.currentData() == "yolo",
        )

    def start(self) -> None:
        if not self.out.text().strip():
            self.status.setText("Choose where to export to.")
            return
        try:
            options = self.options()
        except (ValueError, ProjectError) as exc:
            self.status.setText(str(exc))
            return
        out = Path(self.out.text().strip()).expanduser()
        self._cancel.clear()
        self.export_button.setEnabled(False)
        self.bar.setVisible(True)
        self.bar.setValue(0)
        self.status.setText("Exporting…")

        def run() -> None:
            try:
                report = export_project(
                    self.project,
                    out,
                    options,
                    progress=self._bridge.progress.emit,
                    should_cancel=self._cancel.is_set,
                )
            except ExportCancelled:
                self._bridge.failed.emit("Cancelled: nothing was left behind.")
            except (ProjectError, OSError, ValueError) as exc:
                self._bridge.failed.emit(str(exc))
            else:
                self._bridge.finished.emit(report)

        self._thread = threading.Thread(target=run, name="export", daemon=True)
        self._thread.start()

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait for a running export (tests, closing)."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)

    def _finished(self, report: ExportReport) -> None:
        self.report = report
        self.export_button.setEnabled(True)
        extra = f" and {report.annotations} labels" if report.annotations else ""
        self.status.setText(f"Exported {report.images} image(s){extra} to {report.out}.")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Close")

    def _failed(self, message: str) -> None:
        self.error = message
        self.export_button.setEnabled(True)
        self.bar.setVisible(False)
        self.status.setText(f"⚠ {message}")

    def _cancel_or_close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._cancel.set()
        else:
            self.reject()
