"""The queue: every job with its state, a progress bar with steps and ETA for the running one, its live
preview, and the actions (cancel, retry, move, pause, clear finished)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop.icons import icon
from projects.models import JobStatus
from projects.queue import JobSnapshot

COLUMNS = ("Job", "Scene", "State", "Progress", "Details")
CANCELLING = "cancelling…"
STARTING = "starting…"
NO_RENDER = "no render running"
PAUSED_BY_USER = "Paused: the running job finishes, then the queue waits."
PREVIEW_SIDE = 120


@dataclass
class _Timing:
    step: int = 0
    total: int = 0
    first: tuple[float, int] | None = None  # when the first step was reported, and which: loading is not a step

    def report(self, step: int, total: int) -> None:
        self.step, self.total = step, total
        if self.first is None:
            self.first = (time.perf_counter(), step)

    def eta(self) -> float | None:
        """Seconds left, from the measured time per step since the first one."""
        if self.first is None or self.step <= self.first[1] or self.total <= 0:
            return None
        since, step = self.first
        return (time.perf_counter() - since) / (self.step - step) * (self.total - self.step)


class QueuePanel(QWidget):
    cancelRequested = Signal(int)
    retryRequested = Signal(int)
    moveRequested = Signal(int, int)  # job id, -1 up / +1 down
    frontRequested = Signal(int)
    clearRequested = Signal()
    pauseToggled = Signal(bool)  # True: pause

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list[JobSnapshot] = []
        self.scene_names: dict[int, str] = {}
        self._timings: dict[int, _Timing] = {}
        self._figures: dict[int, str] = {}  # finished jobs: render time and reuse, for their tooltip
        self._phases: dict[int, str] = {}  # what a running job does before its first step
        self._bars: dict[int, QProgressBar] = {}
        self._cancelling: set[int] = set()  # cancelled here, before the project says so

        self.tree = QTreeWidget()
        self.tree.setObjectName("queueList")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.tree.setColumnWidth(3, 220)
        self.preview = QLabel(NO_RENDER)
        self.preview.setObjectName("queuePreview")
        self.preview.setFixedSize(PREVIEW_SIDE, PREVIEW_SIDE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setWordWrap(True)
        self.preview.setStyleSheet("QLabel#queuePreview { border: 1px solid #3a3c40; color: #8a8d93; }")
        self.state_label = QLabel()
        # While the queue is paused: why, and the way out beside it, on the buttons' row (the dock is short).
        self.pause_note = QLabel()
        self.pause_note.setObjectName("queuePauseNote")
        self.pause_note.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)  # clipped, not wider
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("queueResume")
        self.resume_button.setToolTip("Resume the queue: render the waiting jobs")
        self.resume_button.clicked.connect(self._resume)
        self.pause_note.hide()
        self.resume_button.hide()

        self.pause_button = self._button("pause", "Pause the queue (the running job finishes)")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.cancel_button = self._button("cancel", "Cancel the selected job (only that job)")
        self.cancel_button.clicked.connect(lambda: self._with_selected(self.cancelRequested.emit))
        self.retry_button = self._button("retry", "Retry the selected failed or cancelled job")
        self.retry_button.clicked.connect(lambda: self._with_selected(self.retryRequested.emit))
        self.up_button = self._button("move-up", "Move the selected job up")
        self.up_button.clicked.connect(lambda: self._with_selected(lambda job: self.moveRequested.emit(job, -1)))
        self.down_button = self._button("move-down", "Move the selected job down")
        self.down_button.clicked.connect(lambda: self._with_selected(lambda job: self.moveRequested.emit(job, 1)))
        self.front_button = self._button("move-to-front", "Render the selected job next")
        self.front_button.clicked.connect(lambda: self._with_selected(self.frontRequested.emit))
        self.clear_button = self._button("clear", "Clear finished jobs (their renders stay)")
        self.clear_button.clicked.connect(self.clearRequested.emit)

        buttons = QHBoxLayout()
        for button in (
            self.pause_button,
            self.cancel_button,
            self.retry_button,
            self.up_button,
            self.down_button,
            self.front_button,
            self.clear_button,
        ):
            buttons.addWidget(button)
        buttons.addWidget(self.state_label)
        buttons.addWidget(self.pause_note, 1)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(0)
        left = QVBoxLayout()
        left.addLayout(buttons)
        left.addWidget(self.tree, 1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(left, 1)
        layout.addWidget(self.preview, 0, Qt.AlignmentFlag.AlignTop)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self._update_buttons()

    def _button(self, name: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.setObjectName(f"queue-{name}")
        return button

    # --- data in ---------------------------------------------------------------------------

    def set_jobs(self, jobs: list[JobSnapshot]) -> None:
        selected = self.selected_job()
        known = {job.id for job in self.jobs}
        added = [job.id for job in jobs if job.id not in known] if self.jobs else []
        self.jobs = jobs
        running = {job.id for job in jobs if job.status is JobStatus.RUNNING}
        self._cancelling &= running
        self._cancelling |= {job.id for job in jobs if job.cancel_requested and job.id in running}
        self.tree.clear()
        self._bars.clear()
        newest: QTreeWidgetItem | None = None
        for job in jobs:
            item = QTreeWidgetItem(
                [
                    str(job.id),
                    self.scene_names.get(job.scene_id or -1, f"scene {job.scene_id}"),
                    self._state(job.id, job.status),
                    "",
                    self._details(job),
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, job.id)
            figures = self._figures.get(job.id)
            for column in range(4):
                item.setToolTip(column, figures or "")
            item.setToolTip(4, job.error or figures or "")
            self.tree.addTopLevelItem(item)
            if job.status is JobStatus.RUNNING:
                bar = QProgressBar()
                self.tree.setItemWidget(item, 3, bar)
                self._bars[job.id] = bar
                self._show_progress(job.id, job.progress_step, job.progress_total)
            if job.id == selected:
                self.tree.setCurrentItem(item)
            if added and job.id == max(added):  # the newest job just queued: into view, wherever it sits
                newest = item
        if newest is not None:
            self.tree.scrollToItem(newest, QAbstractItemView.ScrollHint.EnsureVisible)
        pending = sum(1 for job in jobs if job.status is JobStatus.PENDING)
        self.state_label.setText(f"{len(running)} rendering · {pending} waiting")
        self._update_buttons()

    def _details(self, job: JobSnapshot) -> str:
        request = job.request
        base = f"seed {request.seed} · {request.steps} steps · {request.width}×{request.height}"
        if job.error:
            return f"{job.error}"
        return base

    def job_started(self, job: JobSnapshot) -> None:
        self._timings[job.id] = _Timing()
        self._phases[job.id] = STARTING
        self._show_preview_text(STARTING)

    def job_phase(self, job_id: int, phase: str) -> None:
        """What the job does before its first step (e.g. loading the model): on its bar and the preview."""
        self._phases[job_id] = phase
        timing = self._timings.get(job_id)
        if timing is None or timing.first is None:
            self._show_preview_text(phase)
            self._show_progress(job_id, 0, 0)

    def job_progress(self, job_id: int, step: int, total: int) -> None:
        timing = self._timings.setdefault(job_id, _Timing())
        timing.report(step, total)
        if self.preview.pixmap().isNull():
            self._show_preview_text(f"step {step} of {total}")
        self._show_progress(job_id, step, total)

    def job_ended(self, job_id: int, figures: str = "") -> None:
        """The job stopped (done, failed, cancelled, put back): its preview goes. `figures` (a finished
        render's time and reuse, in words) becomes the job's tooltip."""
        if figures:
            self._figures[job_id] = figures
        self._timings.pop(job_id, None)
        self._phases.pop(job_id, None)
        self._show_preview_text(NO_RENDER)

    def _show_preview_text(self, text: str) -> None:
        self.preview.clear()
        self.preview.setText(text)

    def mark_cancelling(self, job_id: int) -> None:
        """The user cancelled the job: say so at once, before the render stops and the project says it."""
        job = self._job(job_id)
        if job is None or job.status.is_final:
            return
        self._cancelling.add(job_id)
        item = self._item(job_id)
        if item is not None:
            item.setText(2, self._state(job_id, job.status))
        if job_id in self._bars:
            timing = self._timings.get(job_id)
            self._show_progress(job_id, timing.step if timing else 0, timing.total if timing else 0)
        self._update_buttons()

    def _state(self, job_id: int, status: JobStatus) -> str:
        return CANCELLING if job_id in self._cancelling and not status.is_final else status.value

    def _show_progress(self, job_id: int, step: int, total: int) -> None:
        bar = self._bars.get(job_id)
        if bar is None:
            return
        bar.setRange(0, max(total, 1))
        bar.setValue(step)
        if job_id in self._cancelling:
            bar.setFormat(CANCELLING)
            return
        if total <= 0:  # no step done yet
            bar.setFormat(self._phases.get(job_id, STARTING))
            return
        timing = self._timings.get(job_id)
        eta = timing.eta() if timing is not None else None
        bar.setFormat(f"{step}/{total} steps" + (f" · {eta:.0f}s left" if eta is not None else ""))

    def _item(self, job_id: int) -> QTreeWidgetItem | None:
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if item is not None and item.data(0, Qt.ItemDataRole.UserRole) == job_id:
                return item
        return None

    def job_preview(self, job_id: int, image: QImage) -> None:
        pixmap = QPixmap.fromImage(image).scaled(
            PREVIEW_SIDE, PREVIEW_SIDE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.preview.setPixmap(pixmap)

    def set_paused(self, paused: bool, reason: str = "") -> None:
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(paused)
        self.pause_button.setIcon(icon("resume" if paused else "pause"))
        self.pause_button.setToolTip("Resume the queue" if paused else "Pause the queue (the running job finishes)")
        self.pause_button.blockSignals(False)
        if paused:
            self.pause_note.setText(reason or PAUSED_BY_USER)
            self.pause_note.setToolTip(reason or PAUSED_BY_USER)
        self.pause_note.setVisible(paused)
        self.resume_button.setVisible(paused)

    # --- actions ---------------------------------------------------------------------------

    def selected_job(self) -> int | None:
        item = self.tree.currentItem()
        return None if item is None else int(item.data(0, Qt.ItemDataRole.UserRole))

    def _job(self, job_id: int | None) -> JobSnapshot | None:
        return next((job for job in self.jobs if job.id == job_id), None)

    def _with_selected(self, action: object) -> None:
        job_id = self.selected_job()
        if job_id is not None and callable(action):
            action(job_id)

    def _resume(self) -> None:
        self.pause_button.setChecked(False)  # as if the pause button was clicked: resumes the queue

    def _pause_toggled(self, paused: bool) -> None:
        self.set_paused(paused)
        self.pauseToggled.emit(paused)

    def _update_buttons(self) -> None:
        job = self._job(self.selected_job())
        status = job.status if job else None
        cancellable = job is not None and status in (JobStatus.PENDING, JobStatus.RUNNING)
        self.cancel_button.setEnabled(cancellable and job is not None and job.id not in self._cancelling)
        self.retry_button.setEnabled(status in (JobStatus.FAILED, JobStatus.CANCELLED))
        for button in (self.up_button, self.down_button, self.front_button):
            button.setEnabled(status is JobStatus.PENDING)
