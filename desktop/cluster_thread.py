"""The queue rendered on a Ray cluster from the window: a QThread around rendering.cluster.ClusterDriver with
the render thread's signals and calls (desktop.render_thread.RenderThread), so QueueControl drives either.

This process stays the only writer of the project: the driver runs on this thread, the workers on the
cluster. Differences from the local thread: pausing stops at once (running jobs go back to pending, as
closing does), a cancel reaches a worker through the project (with the next progress write), and live
previews render on this machine only, so here they answer with a note.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QThread, Signal

from desktop.render_thread import LivePreview
from engine.request import RenderRequest
from projects.database import Project
from projects.queue import JobSnapshot
from rendering.outcomes import JobResult

if TYPE_CHECKING:
    from rendering.cluster import ClusterDriver
    from rendering.cluster_actor import WorkerInfo

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0  # an idle driver looks at the queue this often even without a wake (jobs from elsewhere)


class ClusterRenderThread(QThread):
    jobStarted = Signal(object)  # JobSnapshot
    jobPhase = Signal(int, str)
    jobProgress = Signal(int, int, int)  # job id, step, total
    jobPreview = Signal(int, object)
    jobEnded = Signal(object)  # JobResult
    pausedChanged = Signal(bool, str)
    previewReady = Signal(object)  # LivePreview
    workersReady = Signal(str)  # the workers, in words

    def __init__(
        self,
        project: Project,
        address: str,
        *,
        settings_path: Path | None,
        demo_dir: Path | None,
        paused: bool = False,
    ) -> None:
        super().__init__()
        self.setObjectName("render-cluster")
        self.project, self.address = project, address
        self.settings_path, self.demo_dir = settings_path, demo_dir
        self._paused = paused
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._driver: ClusterDriver | None = None
        self.abandoned_job: int | None = None  # the driver puts its own jobs back; kept for RenderThread's API

    # --- called from the GUI thread --------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool, reason: str = "") -> None:
        self._paused = paused
        if paused and self._driver is not None:
            self._driver.stop()  # running jobs go back to pending
        self._wake.set()
        self.pausedChanged.emit(paused, reason)

    def wake(self) -> None:
        self._wake.set()

    def cancel_running(self, job_id: int) -> bool:
        return False  # the cancel stored in the project reaches the worker with the next progress write

    @property
    def running_job(self) -> int | None:
        return None  # several at once on a cluster: the queue panel shows them from the project

    def request_preview(self, token: int, request: RenderRequest) -> None:
        note = "live preview renders on this machine only; the queue renders on the cluster"
        self.previewReady.emit(LivePreview(token, request, None, 0.0, (), note))

    def clear_preview(self) -> None:
        pass

    def shutdown(self, timeout_ms: int) -> bool:
        """Stop: jobs out on the cluster go back to pending (one write) and the workers end."""
        self._closing.set()
        if self._driver is not None:
            self._driver.stop()
        self._wake.set()
        return self.wait(timeout_ms)

    # --- the thread ------------------------------------------------------------------------

    def run(self) -> None:
        from rendering.cluster import ClusterDriver, ClusterError, cluster_plan, connect

        try:
            connect(self.address)
            driver = ClusterDriver(
                self.project,
                _Listener(self),
                cluster_plan(),
                settings_path=self.settings_path,
                demo_dir=self.demo_dir,
            )
            with driver:
                driver.start_workers()
                self._driver = driver
                while not self._closing.is_set():
                    if not self._paused:
                        driver.resume()
                        driver.run()
                        if driver.lost_all_workers:
                            self._paused = True
                            self.pausedChanged.emit(True, "Paused: every cluster worker was lost; their jobs are back")
                    self._wake.wait(IDLE_POLL_S)
                    self._wake.clear()
                self._driver = None
        except ClusterError as exc:
            self._paused = True
            self.pausedChanged.emit(True, f"Not rendering: {exc}")
        except Exception as exc:  # a bug must not take the window down with the thread
            log.exception("the cluster render thread failed")
            self._paused = True
            self.pausedChanged.emit(True, f"Not rendering on the cluster: {exc}")


class _Listener:
    """The driver's reports, as the thread's signals (queued to the GUI thread by Qt)."""

    def __init__(self, thread: ClusterRenderThread) -> None:
        self.thread = thread

    def workers_ready(self, workers: Sequence[WorkerInfo]) -> None:
        self.thread.workersReady.emit(", ".join(info.label for info in workers))

    def job_started(self, job: JobSnapshot, worker: int) -> None:
        self.thread.jobStarted.emit(job)

    def job_progress(self, job_id: int, worker: int, step: int, total: int) -> None:
        self.thread.jobProgress.emit(job_id, step, total)

    def job_ended(self, result: JobResult, worker: int) -> None:
        self.thread.jobEnded.emit(result)
