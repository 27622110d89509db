"""The render engine's thread: owns the runner (models load on first use and stay), takes the next job
whenever it is woken and not paused, and reports through plain-data signals. It never touches a widget.

Closing the window calls `shutdown`, which stops the running job within one sampling step (it goes
back to pending) and waits for the thread to end.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QThread, Signal
from PySide6.QtGui import QImage

from projects.database import Project
from projects.queue import JobSnapshot

if TYPE_CHECKING:  # torch loads on the render thread, when it starts: never on the GUI thread
    from desktop.render_loop import JobResult, QueueLoop
    from engine.runner import ModelProvider

log = logging.getLogger(__name__)

PREVIEW_EVERY = 2  # steps between live previews


class RenderThread(QThread):
    jobStarted = Signal(object)  # JobSnapshot
    jobProgress = Signal(int, int, int)  # job id, step, total
    jobPreview = Signal(int, object)  # job id, QImage
    jobEnded = Signal(object)  # JobResult
    pausedChanged = Signal(bool, str)  # paused, why (empty when the user paused or resumed)

    def __init__(self, project: Project, provider: ModelProvider, *, paused: bool = False) -> None:
        super().__init__()
        self.setObjectName("render-engine")
        self._project = project
        self._provider = provider
        self._wake = threading.Event()
        self._paused = paused
        self._quit = False
        self._loop: QueueLoop | None = None

    # --- called from the GUI thread --------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool, reason: str = "") -> None:
        """Pausing lets the running job finish; resuming takes the next job."""
        self._paused = paused
        self.pausedChanged.emit(paused, reason)
        self._wake.set()

    def wake(self) -> None:
        """New jobs were queued."""
        self._wake.set()

    def cancel_running(self, job_id: int) -> bool:
        loop = self._loop
        return loop is not None and loop.cancel_running(job_id)

    @property
    def running_job(self) -> int | None:
        loop = self._loop
        return None if loop is None else loop.running_job

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Stop within a step (the running job goes back to pending) and wait for the thread."""
        self._quit = True
        loop = self._loop
        if loop is not None:
            loop.stop()
        self._wake.set()
        return self.wait(timeout_ms)

    # --- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        from desktop.render_loop import Outcome, QueueLoop
        from engine.runner import Runner

        loop = QueueLoop(self._project, Runner(self._provider), _Signals(self), preview_every=PREVIEW_EVERY)
        self._loop = loop
        while not self._quit:
            if self._paused:
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                result = loop.run_one()
            except Exception:  # a database error must not end the engine; the job stays as it was
                log.exception("the render loop failed")
                result = None
            if result is None:
                self._wake.wait(timeout=2.0)  # also polls, for jobs queued by another process
                self._wake.clear()
            elif result.outcome is Outcome.OUT_OF_MEMORY:
                self.set_paused(True, "paused: out of memory (see the failed job); resume when ready")
        self._loop = None


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
