"""The model-files dialog: where Stable Diffusion 1.5 and the InstanceDiffusion adapter are, device and precision,
and the placement checker's folder (an open-vocabulary detector that checks renders of real models).

It edits an `engine.model_settings.ModelSettings` and shows, under the fields, what `engine.model_check`
finds for them: a ✓ or ✗ per part, with what to do under each problem. The check reads configs and
hashes in the background (`desktop.background`; the first one also imports torch), so typing never
blocks; a newer check cancels the one in flight, a result that arrives for older field values is
dropped, and closing the dialog cancels the check. OK writes the settings file; Cancel leaves it as it was.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable
from pathlib import Path
from typing import Final

from PySide6.QtCore import QPointF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.background import BackgroundTask, TaskControl, run_in_background
from engine.model_check import CONVERT_COMMAND, SD15_CHOICES, Check, check_model_settings
from engine.model_settings import DEVICE_CHOICES, DTYPE_CHOICES, ModelSettings, ModelSettingsError

__all__ = ["CheckRow", "ModelSettingsDialog"]

CHECK_DELAY_MS: Final = 300  # wait for a pause in typing before checking
ICON_SIZE: Final = 16
OK_COLOR: Final = QColor(46, 139, 87)
PROBLEM_COLOR: Final = QColor(200, 50, 50)
DEVICE_TIPS: Final = "auto: CUDA if there is one, else Apple MPS, else the CPU. A particular GPU: cuda:1."
DTYPE_TIPS: Final = "auto: fp16 on a GPU, fp32 on the CPU. fp16 is not available on the CPU."
CHECKER_NOTE: Final = "Optional: an OWLv2 or Grounding DINO folder, to check renders of real models."
CHECKER_TIPS: Final = (
    "A folder saved with transformers' save_pretrained (config, processor files, model.safetensors). "
    "The demo model's renders are always checked, by its own shape analyser."
)


def _status_pixmap(ok: bool, size: int = ICON_SIZE) -> QPixmap:
    """A drawn ✓ or ✗: a glyph would depend on the fonts installed."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(OK_COLOR if ok else PROBLEM_COLOR, size / 7)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    s = float(size)
    if ok:
        painter.drawPolyline([QPointF(0.18 * s, 0.55 * s), QPointF(0.42 * s, 0.78 * s), QPointF(0.84 * s, 0.24 * s)])
    else:
        painter.drawLine(QPointF(0.24 * s, 0.24 * s), QPointF(0.76 * s, 0.76 * s))
        painter.drawLine(QPointF(0.76 * s, 0.24 * s), QPointF(0.24 * s, 0.76 * s))
    painter.end()
    return pixmap


def _dim(label: QLabel) -> None:
    """Secondary text: the placeholder colour, set in the palette (not a style sheet) so disabling still greys it."""
    palette = label.palette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
        palette.setColor(
            group, QPalette.ColorRole.WindowText, palette.color(group, QPalette.ColorRole.PlaceholderText)
        )
    label.setPalette(palette)


def _breakable(text: str) -> str:
    """HTML-escaped, with a zero-width space after each path separator so a long path wraps in a narrow label."""
    return html.escape(text).replace("/", "/\u200b").replace("\\", "\\\u200b")


def _path_or_none(text: str) -> Path | None:
    """A field's path, absolute (the app's working folder changes between runs); None when empty."""
    value = text.strip()
    if not value:
        return None
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    return Path(value).expanduser().absolute()


class CheckRow(QWidget):
    """One checked part: the ✓/✗ icon, "Title: message", and the hint under a problem."""

    def __init__(self, check: Check, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.check = check
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 2, 0, 2)
        icon = QLabel()
        icon.setPixmap(_status_pixmap(check.ok))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignHCenter)
        icon.setFixedWidth(ICON_SIZE + 4)
        layout.addWidget(icon)
        text = QVBoxLayout()
        text.setSpacing(0)
        self.label = QLabel(f"<b>{html.escape(check.title)}</b>: {_breakable(check.message)}")
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setWordWrap(True)
        text.addWidget(self.label)
        self.hint_label: QLabel | None = None
        if not check.ok and check.hint:
            self.hint_label = QLabel(_breakable(check.hint))
            self.hint_label.setTextFormat(Qt.TextFormat.RichText)
            self.hint_label.setWordWrap(True)
            _dim(self.hint_label)
            text.addWidget(self.hint_label)
        layout.addLayout(text, 1)

    def text(self) -> str:
        """What the row says, as plain text (for tests and accessibility)."""
        lines = [f"{self.check.title}: {self.check.message}"]
        if not self.check.ok and self.check.hint:
            lines.append(self.check.hint)
        return "\n".join(lines)


class ModelSettingsDialog(QDialog):
    """Edit the model settings stored at `path`; OK saves them there (atomically), Cancel discards the edits."""

    checks_updated = Signal()  # the check list now shows results for the current field values

    def __init__(self, path: Path, parent: QWidget | None = None, *, demo_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model files")
        self.setMinimumWidth(680)
        self._path = Path(path)
        self._demo_dir = demo_dir
        self._serial = 0  # bumped on every edit; only the result for the latest serial is shown
        self._shown_serial = -1
        self._valid = True  # whether the fields make a ModelSettings (else the inline error shows)
        self._checks: list[Check] = []
        self._rows: list[CheckRow] = []
        self._check_task: BackgroundTask[list[Check]] | None = None  # the check in flight, if any

        load_problem = ""
        try:
            initial = ModelSettings.load(self._path, missing_ok=True)
        except ModelSettingsError as exc:
            initial = ModelSettings()
            load_problem = f"Could not read the settings file ({exc.reason}); OK replaces it with these values."

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(CHECK_DELAY_MS)
        self._debounce.timeout.connect(self._start_check)

        self._initial = initial  # what the dialog has no field for (bases, LoRAs, low memory) is kept as it was
        self._build(initial)
        self._show_load_problem(load_problem)
        self._fields_changed()
        self._debounce.stop()
        self._start_check()  # the first check runs at once: there is nothing to wait for

    # --- building ------------------------------------------------------------------------------

    def _build(self, initial: ModelSettings) -> None:
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)

        self.sd15_edit = QLineEdit("" if initial.sd15 is None else str(initial.sd15))
        self.sd15_edit.setPlaceholderText("not set")
        self.sd15_edit.setClearButtonEnabled(True)
        self.sd15_folder_button = self._button("Folder…", self._browse_sd15_folder)
        self.sd15_file_button = self._button("File…", self._browse_sd15_file)
        sd15_note = self._note(f"{SD15_CHOICES[0].upper()}{SD15_CHOICES[1:]}.")
        form.addRow(
            "Stable Diffusion 1.5:",
            self._field(self.sd15_edit, self.sd15_folder_button, self.sd15_file_button, note=sd15_note),
        )

        self.adapter_edit = QLineEdit("" if initial.adapter is None else str(initial.adapter))
        self.adapter_edit.setPlaceholderText("not set")
        self.adapter_edit.setClearButtonEnabled(True)
        self.adapter_button = self._button("File…", self._browse_adapter)
        self.convert_note = self._note(
            "No adapter yet? Convert the official checkpoint once, in a terminal:<br>"
            f"<code style='white-space: pre'>{html.escape(CONVERT_COMMAND)}</code>"
        )
        self.convert_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # to copy it
        form.addRow(
            "InstanceDiffusion adapter:", self._field(self.adapter_edit, self.adapter_button, note=self.convert_note)
        )

        # Editable, because a particular GPU ("cuda:1") is a valid choice too.
        self.device_combo = QComboBox()
        self.device_combo.setEditable(True)
        self.device_combo.addItems(list(DEVICE_CHOICES))
        self.device_combo.setCurrentText(initial.device)
        self.device_combo.setToolTip(DEVICE_TIPS)
        self.device_combo.setMinimumContentsLength(8)  # room for "cuda:1"
        self.dtype_combo = QComboBox()
        self.dtype_combo.addItems(list(DTYPE_CHOICES))
        self.dtype_combo.setCurrentText(initial.dtype)
        self.dtype_combo.setToolTip(DTYPE_TIPS)
        form.addRow("Device:", self._field(self.device_combo, stretch=False))
        form.addRow("Precision:", self._field(self.dtype_combo, stretch=False))

        self.checker_edit = QLineEdit("" if initial.checker is None else str(initial.checker))
        self.checker_edit.setPlaceholderText("not set: renders of real models are not checked")
        self.checker_edit.setClearButtonEnabled(True)
        self.checker_edit.setToolTip(CHECKER_TIPS)
        self.checker_button = self._button("Folder…", self._browse_checker)
        form.addRow(
            "Placement checker:",
            self._field(self.checker_edit, self.checker_button, note=self._note(html.escape(CHECKER_NOTE))),
        )

        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {PROBLEM_COLOR.name()}")
        self.error_label.hide()
        self.load_problem_label = QLabel()
        self.load_problem_label.setWordWrap(True)
        self.load_problem_label.hide()

        checks_box = QGroupBox("Checks")
        self._checks_layout = QVBoxLayout(checks_box)
        self.status_label = QLabel()
        _dim(self.status_label)
        self._checks_layout.addWidget(self.status_label)

        self.demo_button = self._button("Use the demo model", self.use_demo_model)
        self.demo_button.setToolTip("Clear both model fields: renders then use the small model bundled with the app.")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        bottom = QHBoxLayout()
        bottom.addWidget(self.demo_button)
        bottom.addStretch(1)
        bottom.addWidget(self.buttons)

        where = self._note(f"Saved in {_breakable(str(self._path))}", wrap=True)

        layout = self._main_layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.load_problem_label)
        layout.addWidget(self.error_label)
        layout.addWidget(checks_box)
        layout.addWidget(where)
        layout.addStretch(1)
        layout.addSpacing(6)
        layout.addLayout(bottom)

        for edit in (self.sd15_edit, self.adapter_edit, self.checker_edit):
            edit.textChanged.connect(self._fields_changed)
        self.device_combo.currentTextChanged.connect(self._fields_changed)
        self.dtype_combo.currentTextChanged.connect(self._fields_changed)

    def _button(self, text: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text)
        button.setAutoDefault(False)  # Enter in a field means OK, not "browse"
        button.clicked.connect(slot)
        return button

    @staticmethod
    def _field(main: QWidget, *extra: QWidget, stretch: bool = True, note: QLabel | None = None) -> QWidget:
        """`main` and its buttons on one line, with the note (if any) under them in the same column."""
        field = QWidget()
        column = QVBoxLayout(field)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        line = QHBoxLayout()
        line.addWidget(main, 1 if stretch else 0)
        for widget in extra:
            line.addWidget(widget)
        if not stretch:
            line.addStretch(1)
        column.addLayout(line)
        if note is not None:
            column.addWidget(note)
        return field

    @staticmethod
    def _note(rich_text: str, *, wrap: bool = False) -> QLabel:
        # Notes in the form do not wrap: QFormLayout sizes a wrapping label for too narrow a width and clips it.
        label = QLabel(rich_text)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(wrap)
        _dim(label)
        return label

    def _show_load_problem(self, text: str) -> None:
        self.load_problem_label.setText(text)
        self.load_problem_label.setVisible(bool(text))
        self._fit_height()

    # --- fields --------------------------------------------------------------------------------

    def settings(self) -> ModelSettings:
        """The settings the fields describe; ValueError (with a message for the user) when they are not valid."""
        return dataclasses.replace(
            self._initial,
            sd15=_path_or_none(self.sd15_edit.text()),
            adapter=_path_or_none(self.adapter_edit.text()),
            device=self.device_combo.currentText().strip(),
            dtype=self.dtype_combo.currentText(),
            checker=_path_or_none(self.checker_edit.text()),
        )

    def use_demo_model(self) -> None:
        """Clear both model paths: with neither set, renders use the bundled demo model."""
        self.sd15_edit.clear()
        self.adapter_edit.clear()

    @Slot()
    def _fields_changed(self) -> None:
        self._serial += 1  # whatever is in flight now describes older values
        self._set_rows_current(False)
        try:
            self.settings()
        except ValueError as exc:
            self._valid = False
            self._debounce.stop()
            self._show_error(str(exc))
            self._ok_button().setEnabled(False)
            self.status_label.setText("Not checked: fix the value above first.")
            return
        self._valid = True
        self._show_error("")
        self._ok_button().setEnabled(True)
        self.status_label.setText("Checking…")
        self._debounce.start()

    def _show_error(self, text: str) -> None:
        self.error_label.setText(text)
        self.error_label.setVisible(bool(text))
        self._fit_height()

    def _ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def _browse_start(self, text: str) -> str:
        current = Path(text.strip()).expanduser() if text.strip() else Path.home()
        while not current.is_dir() and current != current.parent:
            current = current.parent
        return str(current)

    def _browse_sd15_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Stable Diffusion 1.5 folder", self._browse_start(self.sd15_edit.text())
        )
        if chosen:
            self.sd15_edit.setText(chosen)

    def _browse_sd15_file(self) -> None:
        chosen, _filter = QFileDialog.getOpenFileName(
            self,
            "Stable Diffusion 1.5 checkpoint",
            self._browse_start(self.sd15_edit.text()),
            "Stable Diffusion checkpoints (*.safetensors *.ckpt);;All files (*)",
        )
        if chosen:
            self.sd15_edit.setText(chosen)

    def _browse_adapter(self) -> None:
        chosen, _filter = QFileDialog.getOpenFileName(
            self,
            "InstanceDiffusion adapter",
            self._browse_start(self.adapter_edit.text()),
            "Converted adapters (*.safetensors);;All files (*)",
        )
        if chosen:
            self.adapter_edit.setText(chosen)

    def _browse_checker(self) -> None:
        chosen = QFileDialog.getExistingDirectory(
            self, "Placement checker: an OWLv2 or Grounding DINO folder", self._browse_start(self.checker_edit.text())
        )
        if chosen:
            self.checker_edit.setText(chosen)

    # --- checking ------------------------------------------------------------------------------

    def is_checking(self) -> bool:
        """True while the check list does not yet describe the current field values."""
        return self._valid and self._shown_serial != self._serial

    def checks(self) -> list[Check]:
        """The latest results shown (they may describe older values while `is_checking()`)."""
        return list(self._checks)

    def check_rows(self) -> list[CheckRow]:
        return list(self._rows)

    @Slot()
    def _start_check(self) -> None:
        try:
            settings = self.settings()
        except ValueError:
            return  # the inline error is showing; nothing to check
        serial, demo_dir = self._serial, self._demo_dir

        def check(control: TaskControl) -> list[Check]:  # on a pool thread: frozen data in, frozen data out
            return check_model_settings(settings, demo_dir=demo_dir)

        def failed(exc: BaseException) -> None:  # a bug in the check must show up in the dialog, not vanish
            self._check_finished(
                serial, [Check("check", f"the check itself failed: {type(exc).__name__}: {exc}", False)]
            )

        self._cancel_check()  # its result would describe older values anyway
        self._check_task = run_in_background(
            check,
            on_done=lambda checks: self._check_finished(serial, checks),
            on_error=failed,
            parent=self,
            name="model check",
        )

    def _cancel_check(self) -> None:
        if self._check_task is not None:
            self._check_task.cancel()
            self._check_task = None

    def _check_finished(self, serial: int, checks: list[Check]) -> None:
        if serial != self._serial:
            return  # for values the user has since changed; a newer check is on its way
        self._shown_serial = serial
        self._checks = list(checks)
        for row in self._rows:
            self._checks_layout.removeWidget(row)
            row.deleteLater()
        self._rows = [CheckRow(check) for check in checks]
        for row in self._rows:
            self._checks_layout.addWidget(row)
        problems = sum(not check.ok for check in checks)
        self.status_label.setText(
            "Everything is in place." if not problems else f"{problems} problem{'s' if problems > 1 else ''}:"
        )
        self._fit_height()
        self.checks_updated.emit()

    def _fit_height(self) -> None:
        # A top-level dialog's minimum size ignores the height that wrapped labels need at its width, so new
        # rows would be clipped: grow (never shrink) to that height, and keep it as the minimum.
        for row in self._rows:
            row.show()  # Qt shows new children later; hidden ones would not count below
        self._main_layout.activate()
        needed = max(self.heightForWidth(self.width()), self.minimumSizeHint().height())
        if needed > self.minimumHeight():
            self.setMinimumHeight(needed)
        if self.height() < needed:
            self.resize(self.width(), needed)

    def _set_rows_current(self, current: bool) -> None:
        # Rows for older values stay visible (no flicker while typing) but greyed until the new result comes.
        for row in self._rows:
            row.setEnabled(current)

    # --- closing -------------------------------------------------------------------------------

    def accept(self) -> None:
        try:
            settings = self.settings()
        except ValueError:
            return  # OK is disabled then; Enter in a field must not save either
        try:
            settings.save(self._path)
        except OSError as exc:
            self._show_error(f"Could not save {self._path}: {exc.strerror or exc}")
            return
        super().accept()

    def done(self, result: int) -> None:
        self._debounce.stop()
        self._serial += 1  # results still in flight have no one left to show them to
        self._cancel_check()
        super().done(result)
