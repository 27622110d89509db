"""The render engine's thread: a QThread serving the project's queue (rendering.worker) and reporting
through plain-data signals. It never touches a widget.

Closing the window calls `shutdown`, which stops the running job within one sampling step (it goes
back to pending) and waits for the thread to end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage

from projects.database import Project
from projects.queue import JobSnapshot
from rendering.outcomes import JobResult
from rendering.worker import QueueWorker

if TYPE_CHECKING:  # torch loads on the render thread, when it starts: never on the GUI thread
    from engine.runner import ModelProvider

PREVIEW_EVERY = 2  # steps between live previews


class RenderThread(QThread):
    jobStarted = Signal(object)  # JobSnapshot
    jobProgress = Signal(int, int, int)  # job id, step, total
    jobPreview = Signal(int, object)  # job id, QImage
    jobEnded = Signal(object)  # rendering.outcomes.JobResult
    pausedChanged = Signal(bool, str)  # paused, why (empty when the user paused or resumed)

    def __init__(self, project: Project, provider: ModelProvider, *, paused: bool = False) -> None:
        super().__init__()
        self.setObjectName("render-engine")
        self._worker = QueueWorker(
            project,
            provider,
            _Signals(self),
            paused=paused,
            preview_every=PREVIEW_EVERY,
            on_paused=self.pausedChanged.emit,
        )

    # --- called from the GUI thread --------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._worker.paused

    def set_paused(self, paused: bool, reason: str = "") -> None:
        """Pausing lets the running job finish; resuming takes the next job."""
        self._worker.set_paused(paused, reason)

    def wake(self) -> None:
        """New jobs were queued."""
        self._worker.wake()

    def cancel_running(self, job_id: int) -> bool:
        return self._worker.cancel_running(job_id)

    @property
    def running_job(self) -> int | None:
        return self._worker.running_job

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop within a step (the running job goes back to pending) and wait for the thread."""
        self._worker.stop()
        return self.wait(timeout_ms)

    # --- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        self._worker.serve()


class _Signals:
    """The loop's listener: turns its callbacks into the thread's signals."""

    def __init__(self, thread: RenderThread) -> None:
        self.thread = thread

    def job_started(self, job: JobSnapshot) -> None:
        self.thread.jobStarted.emit(job)

    def job_progress(self, job_id: int, step: int, total: int, preview: npt.NDArray[np.uint8] | None) -> None:
        self.thread.jobProgress.emit(job_id, step, total)
        if preview is not None:
            self.thread.jobPreview.emit(job_id, to_qimage(preview))

    def job_ended(self, result: JobResult) -> None:
        self.thread.jobEnded.emit(result)


def to_qimage(array: npt.NDArray[np.uint8]) -> QImage:
    """An (H, W, 3) uint8 array as a QImage that owns its pixels (safe to hand to another thread)."""
    data = np.ascontiguousarray(array)
    height, width, _ = data.shape
    return QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
