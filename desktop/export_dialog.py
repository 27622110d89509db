"""The export dialog: what to export, in which format, where; it runs in the background with a progress bar
and a Cancel button, and says in words what went wrong (a full disk, a folder in the way).

Threads. The export is a background task (`desktop.background`), not a job on the project store's worker:
that worker also saves the edits, and an export of hundreds of images must not hold a save up for minutes.
The task asks the store for the project (`ProjectStore.project_for_reading`, which first lets the store
finish the requests already made, so the export sees every edit made before it) and `projects.export`
reads it in short read sessions of its own, one render at a time; WAL lets those reads run beside the
store's writes. No ORM object leaves `projects.export_source`: what comes back to the GUI thread is the
plain `ExportReport` (or the exception), through the helper's queued signal, so the GUI never waits.

Stopping. The exporter asks `should_cancel()` before each image and, when told to stop, removes every file
it wrote before raising `ExportCancelled`, so a cancelled export leaves nothing half written. The Cancel
button asks the task to stop (`request_stop`) and the dialog then says so; closing the dialog cancels the
task outright (nothing more is reported to it), and the window cancels and waits for its tasks before it
closes the project.

Datasets (COCO, YOLO) take only the renders whose every instance passed its placement check unless told
otherwise ("Renders" follows the format until the user picks one); labels come from the layout or from
the boxes the check found; a split cuts the dataset by scene in the ratios given, seeded. When done, the
dialog lists what the export left out and why (`ExportReport.notes`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop.background import BackgroundTask, TaskControl, run_in_background
from desktop.store import ProjectStore
from projects.errors import ProjectError
from projects.export import (
    DEFAULT_TEMPLATE,
    ExportCancelled,
    ExportOptions,
    ExportReport,
    SplitRatios,
    default_include,
    export_project,
)

log = logging.getLogger(__name__)

CANCELLED_MESSAGE = "Cancelled: nothing was left behind."


class ExportDialog(QDialog):
    """Modal to its window: while it is open the scenes it was opened for cannot change under it, and a
    second Ctrl+E cannot open a second one (`open_for` brings the open one forward instead)."""

    @classmethod
    def open_for(
        cls, window: QWidget, store: ProjectStore, scene_ids: list[int], render_ids: list[int]
    ) -> ExportDialog:
        """The window's export dialog: the one already open, brought to the front, or a new one, shown."""
        for dialog in window.findChildren(cls):
            if dialog.isVisible():
                dialog.raise_()
                dialog.activateWindow()
                return dialog
        dialog = cls(store, scene_ids, render_ids, window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def __init__(
        self,
        store: ProjectStore,
        scene_ids: list[int],
        render_ids: list[int],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self.store = store
        self.scene_ids = scene_ids
        self.render_ids = render_ids
        self._task: BackgroundTask[ExportReport] | None = None  # the export in flight (or the last one cancelled)
        self.report: ExportReport | None = None
        self.error: str | None = None

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
        self.template.setToolTip(
            "Fields: {project} {scene} {seed} {index} (the render's number in its scene) {date} (of the render)"
        )
        self.sidecar = QCheckBox("JSON layout beside each image")
        self.annotated = QCheckBox("Previews with the layout drawn over")
        self.segments = QCheckBox("YOLO: segmentation polygons")
        self.zip = QCheckBox("One zip file")
        self.include = QComboBox()
        self.include.addItem("Only renders whose every instance was placed", "placed")
        self.include.addItem("The best checked render of each scene", "best")
        self.include.addItem("Everything, checked or not", "everything")
        self.include.setToolTip("Placement is judged by the project's current thresholds")
        self._include_chosen = False  # once the user picks one, a format change leaves it alone
        self.include.activated.connect(self._include_picked)
        self.labels = QComboBox()
        self.labels.addItem("As drawn in the layout", "drawn")
        self.labels.addItem("Where the placement check found them (boxes)", "found")
        self.split = QCheckBox("Split by scene into train / val / test")
        self.split_ratios = [self._ratio_box(value) for value in (0.8, 0.1, 0.1)]
        self.split_seed = QSpinBox()
        self.split_seed.setRange(0, 2**31 - 1)
        self.split_seed.setPrefix("seed ")
        split_row = QHBoxLayout()
        for name, box in zip(("train", "val", "test"), self.split_ratios, strict=True):
            split_row.addWidget(QLabel(name))
            split_row.addWidget(box)
        split_row.addWidget(self.split_seed)
        split_row.addStretch(1)
        self.split_row = QWidget()
        self.split_row.setLayout(split_row)
        split_row.setContentsMargins(0, 0, 0, 0)
        self.split.toggled.connect(self._format_changed)
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
        form.addRow("Renders", self.include)
        form.addRow("Labels", self.labels)
        form.addRow("", self.split)
        form.addRow("Ratios", self.split_row)
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

    @staticmethod
    def _ratio_box(value: float) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 1.0)
        box.setSingleStep(0.05)
        box.setDecimals(2)
        box.setValue(value)
        return box

    def _include_picked(self) -> None:
        self._include_chosen = True

    def _format_changed(self) -> None:
        fmt = self.format.currentData()
        dataset = fmt != "images"
        self.segments.setEnabled(fmt == "yolo")
        if not self._include_chosen:
            self.include.setCurrentIndex(self.include.findData(default_include(fmt)))
        self.labels.setEnabled(dataset)
        self.split.setEnabled(dataset)
        self.split_row.setEnabled(dataset and self.split.isChecked())

    def _choose(self) -> None:
        if self.zip.isChecked():
            name, _ = QFileDialog.getSaveFileName(self, "Export to", "export.zip", "Zip (*.zip)")
        else:
            name = QFileDialog.getExistingDirectory(self, "Export into")
        if name:
            self.out.setText(name)

    def options(self) -> ExportOptions:
        """The chosen options; raises ExportError (a ProjectError) for split ratios that are not a split."""
        which = self.which.currentData()
        dataset = self.format.currentData() != "images"
        split = dataset and self.split.isChecked()
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
            include=self.include.currentData(),
            labels=self.labels.currentData() if dataset else "drawn",
            split=SplitRatios(*(box.value() for box in self.split_ratios)) if split else None,
            split_seed=self.split_seed.value(),
        )

    def start(self) -> None:
        if self.is_exporting():
            return
        if not self.out.text().strip():
            self.status.setText("Choose where to export to.")
            return
        try:
            options = self.options()
        except (ValueError, ProjectError) as exc:
            self.status.setText(str(exc))
            return
        out = Path(self.out.text().strip()).expanduser()
        store = self.store

        def run(control: TaskControl) -> ExportReport:  # on a pool thread
            return export_project(
                store.project_for_reading(),
                out,
                options,
                progress=control.report_progress,
                should_cancel=control.is_cancelled,
            )

        self.report = None
        self.error = None
        self.export_button.setEnabled(False)
        self.bar.setVisible(True)
        self.bar.setValue(0)
        self.status.setText("Exporting…")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Cancel")
        self._task = run_in_background(
            run, on_done=self._finished, on_error=self._failed, on_progress=self._progress, parent=self, name="export"
        )

    def is_exporting(self) -> bool:
        """True from Export until the export's outcome is shown (or the dialog is closed)."""
        return self._task is not None and not self._task.cancelled

    def wait(self, timeout: float = 60.0) -> bool:
        """Wait until the export has returned, cancelled or not (tests, closing); True if it has. Its outcome
        then still needs the event loop to arrive."""
        return self._task is None or self._task.wait(timeout)

    def _progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)

    def _finished(self, report: ExportReport) -> None:
        self._task = None
        self.report = report
        self.export_button.setEnabled(True)
        extra = f" and {report.annotations} labels" if report.annotations else ""
        lines = [f"Exported {report.images} image(s){extra} to {report.out}."]
        if report.splits:
            lines.append("Splits: " + ", ".join(f"{name} {images}" for name, images in report.splits) + ".")
        lines += [note[0].upper() + note[1:] + "." for note in report.notes()]
        self.status.setText("\n".join(lines))
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setText("Close")

    def _failed(self, exc: BaseException) -> None:
        self._task = None
        if isinstance(exc, ExportCancelled):
            message = CANCELLED_MESSAGE
        elif isinstance(exc, ProjectError | OSError | ValueError):
            message = str(exc)
        else:  # a bug: say so, and keep its traceback in the log
            log.error("export failed", exc_info=exc)
            message = f"unexpected error: {type(exc).__name__}: {exc}"
        self.error = message
        self.export_button.setEnabled(True)
        self.bar.setVisible(False)
        self.status.setText(f"⚠ {message}")

    def _cancel_or_close(self) -> None:
        if self._task is not None and self.is_exporting():
            self._task.request_stop()  # the exporter cleans up, then its ExportCancelled comes to _failed
            self.status.setText("Cancelling…")
        else:
            self.reject()

    def done(self, result: int) -> None:
        # Closed while exporting (Escape, the title bar): stop the export, and hear nothing more from it.
        if self._task is not None:
            self._task.cancel()
        super().done(result)
