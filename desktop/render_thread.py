"""The render engine's thread: a QThread serving the project's queue (rendering.worker) and reporting
through plain-data signals. It never touches a widget.

Closing the window calls `shutdown`, which stops the running job at the engine's next cancel check (it goes
back to pending) and waits a few seconds for the thread to end. Some calls cannot be interrupted (loading a
model from disk): when the wait runs out the thread is abandoned instead of destroyed while it runs, which
would abort the app. An abandoned thread writes nothing more, reports nothing more, and is kept alive until
it ends by itself; the owner puts its job back. If the app quits first, `_exit_past_abandoned` ends the
process cleanly rather than let Qt destroy a running thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QCoreApplication, QThread, Signal
from PySide6.QtGui import QImage

from engine.request import RenderRequest
from projects.database import Project
from projects.queue import JobSnapshot
from rendering.live_preview import PreviewResult
from rendering.outcomes import JobPhase, JobResult
from rendering.worker import QueueWorker

if TYPE_CHECKING:  # torch loads on the render thread, when it starts: never on the GUI thread
    from engine.runner import ModelProvider
    from rendering.placement_check import CheckerSelection

log = logging.getLogger(__name__)

PREVIEW_EVERY = 2  # steps between live previews
SHUTDOWN_WAIT_MS = 5_000  # how long closing waits for the engine's next cancel check
EXIT_WAIT_MS = 10_000  # how long a quitting app still waits for abandoned threads before it exits anyway

_abandoned: set[RenderThread] = set()  # every abandoned thread, running or ended


@dataclass(frozen=True)
class LivePreview:
    """A finished live preview (`rendering.live_preview.PreviewResult`) with its image already a QImage
    (converted on the render thread, so the GUI thread only draws it)."""

    token: int
    request: RenderRequest
    image: QImage | None
    seconds: float
    reused_instances: tuple[int, ...]
    error: str | None


class RenderThread(QThread):
    jobStarted = Signal(object)  # JobSnapshot
    jobPhase = Signal(int, str)  # job id, what it does before its first step (rendering.outcomes.JobPhase)
    jobProgress = Signal(int, int, int)  # job id, step, total
    jobPreview = Signal(int, object)  # job id, QImage
    jobEnded = Signal(object)  # rendering.outcomes.JobResult
    pausedChanged = Signal(bool, str)  # paused, why (empty when the user paused or resumed)
    previewReady = Signal(object)  # LivePreview

    def __init__(
        self,
        project: Project,
        provider: ModelProvider,
        *,
        paused: bool = False,
        select_checker: CheckerSelection | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("render-engine")
        self._signals = _Signals(self)
        self._worker = QueueWorker(
            project,
            provider,
            self._signals,
            paused=paused,
            preview_every=PREVIEW_EVERY,
            on_paused=self.pausedChanged.emit,
            on_preview=self._signals.preview_ready,
            select_checker=select_checker,
        )
        self.abandoned_job: int | None = None  # set by a `shutdown` that timed out: the job to put back

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

    def request_preview(self, token: int, request: RenderRequest) -> None:
        """Render `request` as a live preview when the queue is idle, replacing (and cancelling) an older one;
        `previewReady` brings it back with the same `token` (tokens must increase)."""
        self._worker.request_preview(token, request)

    def clear_preview(self) -> None:
        """Drop the waiting preview and cancel the running one (Live was switched off, the scene changed)."""
        self._worker.clear_preview()

    @property
    def running_job(self) -> int | None:
        return self._worker.running_job

    def shutdown(self, timeout_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Stop at the engine's next cancel check (the running job goes back to pending) and wait for the
        thread. False when it did not end in time: then it is abandoned (see the module's doc) and
        `abandoned_job` is the job still marked running, for the caller to put back; the caller must not
        delete the thread (it is kept until the app ends)."""
        self._worker.stop()
        if self.wait(timeout_ms):
            return True
        self._signals.muted = True
        self.abandoned_job = self._worker.abandon()
        if not _abandoned:
            atexit.register(_exit_past_abandoned)
        # Kept for the life of the app: deleting it (by hand, by Python, by a parent) while it runs aborts the
        # app, and deleting it from its own `finished` is not safe either. Its model is freed when it ends.
        _abandoned.add(self)
        log.warning("the render thread did not stop within %d ms; it is left to end on its own", timeout_ms)
        return False

    # --- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        self._worker.serve()


def abandoned_threads() -> list[RenderThread]:
    """Render threads abandoned by a `shutdown` that are still running."""
    return [thread for thread in _abandoned if thread.isRunning()]


def _exit_past_abandoned() -> None:
    """At exit: give abandoned render threads a last while to end; if one still runs, leave the process at
    once (its project is closed and its job put back) instead of letting Qt destroy a running QThread,
    which aborts the app."""
    running = [thread for thread in list(_abandoned) if not thread.wait(EXIT_WAIT_MS)]
    if not running:
        return
    log.warning("the render thread is still in an uninterruptible call; exiting without waiting for it")
    QCoreApplication.sendPostedEvents()  # e.g. QSettings' pending writes
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class _Signals:
    """The loop's listener: turns its callbacks into the thread's signals (none once muted)."""

    def __init__(self, thread: RenderThread) -> None:
        self.thread = thread
        self.muted = False

    def job_started(self, job: JobSnapshot) -> None:
        if not self.muted:
            self.thread.jobStarted.emit(job)

    def job_phase(self, job_id: int, phase: JobPhase) -> None:
        if not self.muted:
            self.thread.jobPhase.emit(job_id, phase.value)

    def job_progress(self, job_id: int, step: int, total: int, preview: npt.NDArray[np.uint8] | None) -> None:
        if self.muted:
            return
        self.thread.jobProgress.emit(job_id, step, total)
        if preview is not None:
            self.thread.jobPreview.emit(job_id, to_qimage(preview))

    def job_ended(self, result: JobResult) -> None:
        if not self.muted:
            self.thread.jobEnded.emit(result)

    def preview_ready(self, result: PreviewResult) -> None:
        if self.muted:
            return
        image = to_qimage(result.image) if result.image is not None else None
        self.thread.previewReady.emit(
            LivePreview(result.token, result.request, image, result.seconds, result.reused_instances, result.error)
        )


def to_qimage(array: npt.NDArray[np.uint8]) -> QImage:
    """An (H, W, 3) uint8 array as a QImage that owns its pixels (safe to hand to another thread)."""
    data = np.ascontiguousarray(array)
    height, width, _ = data.shape
    return QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
