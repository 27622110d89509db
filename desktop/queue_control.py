"""The render queue as the window drives it: the render thread serving the open project, and the user's
actions on jobs (cancel, retry, move, send to the front, clear, pause), written through the store.

The render thread loads torch and the models itself, so nothing here imports the engine at module level.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from sqlalchemy.orm import Session

from desktop.panels.queue_panel import QueuePanel
from desktop.render_target import LOCAL_RAY, RenderTarget
from desktop.render_thread import SHUTDOWN_WAIT_MS, RenderThread
from desktop.store import ProjectStore
from engine.request import RenderRequest
from projects.queue import JobSnapshot, clear_finished, move, move_to_front, request_cancel, requeue, retry
from rendering.demo_model import demo_model_dir
from rendering.outcomes import JobResult, Outcome
from rendering.placement_check import settings_checkers

if TYPE_CHECKING:
    from desktop.cluster_thread import ClusterRenderThread
    from engine.model_settings import ModelSettings
    from engine.runner import LoadedModel


UNCLEAN_EXIT_PAUSE = "Paused: the app did not close cleanly last time. Check the queue, then resume."


class QueueControl(QObject):
    renderFinished = Signal(int)  # the scene id of a job that just finished with a render
    message = Signal(str, int)  # text, milliseconds to show it
    previewReady = Signal(object)  # desktop.render_thread.LivePreview, from whichever thread serves now

    def __init__(self, panel: QueuePanel, model_settings_path: Path, parent: QObject) -> None:
        super().__init__(parent)
        self.panel = panel
        self.model_settings_path = model_settings_path
        self.demo_model_dir = demo_model_dir()
        self.store: ProjectStore | None = None
        self.render_thread: RenderThread | ClusterRenderThread | None = None
        self.render_target = RenderTarget()  # where the queue renders (the window sets it from its settings)
        self.shutdown_wait_ms = SHUTDOWN_WAIT_MS
        panel.cancelRequested.connect(self.cancel_job)
        panel.retryRequested.connect(lambda job_id: self._job_action(lambda s: retry(s, job_id)))
        panel.moveRequested.connect(self.move_job)
        panel.frontRequested.connect(lambda job_id: self._job_action(lambda s: move_to_front(s, job_id)))
        panel.clearRequested.connect(lambda: self._job_action(clear_finished))
        panel.pauseToggled.connect(self.set_paused)

    def start(self, store: ProjectStore, *, paused: bool) -> None:
        """Serve the queue of the project `store` has open (paused after an unclean exit)."""
        assert store.project is not None
        self.store = store
        settings_path = self.model_settings_path

        def provide(model_id: str) -> LoadedModel:
            # Runs on the render thread: torch and the models load there, never on the GUI thread.
            from engine.model_settings import ModelSettings
            from engine.providers import settings_provider

            settings = ModelSettings.load(settings_path, missing_ok=True)
            # Read when a job starts, so a demo model chosen after the project opened is used.
            return settings_provider(settings, demo_dir=self.demo_model_dir)(model_id)

        def settings() -> ModelSettings:  # read for each render's placement check, on the render thread
            from engine.model_settings import ModelSettings

            return ModelSettings.load(settings_path, missing_ok=True)

        thread: RenderThread | ClusterRenderThread
        if self.render_target.cluster_address is not None:  # on a Ray cluster (desktop.render_target)
            thread = self._cluster_thread(store, self.render_target.cluster_address, paused)
        else:
            thread = RenderThread(store.project, provide, paused=paused, select_checker=settings_checkers(settings))
        thread.jobStarted.connect(self._job_started)
        thread.jobPhase.connect(self.panel.job_phase)
        thread.jobProgress.connect(self.panel.job_progress)
        thread.jobPreview.connect(self.panel.job_preview)
        thread.jobEnded.connect(self._job_ended)
        thread.pausedChanged.connect(self.panel.set_paused)
        thread.previewReady.connect(self.previewReady)
        self.render_thread = thread
        thread.start()
        if paused:
            self.panel.set_paused(True, UNCLEAN_EXIT_PAUSE)
        store.refresh_jobs()

    def set_render_target(self, target: RenderTarget) -> None:
        """Render on this machine or a Ray cluster from now on: an open project's queue moves at once (its
        running jobs go back to pending first)."""
        if target == self.render_target:
            return
        self.render_target = target
        store = self.store
        if store is not None and self.render_thread is not None:
            paused = self.render_thread.paused
            self.stop()
            self.start(store, paused=paused)

    def _cluster_thread(self, store: ProjectStore, address: str, paused: bool) -> ClusterRenderThread:
        """The queue's driver for a Ray cluster: on a Ray on this machine the workers read this app's model
        settings and demo model; on a real cluster, each node its own."""
        from desktop.cluster_thread import ClusterRenderThread

        assert store.project is not None
        here = address == LOCAL_RAY
        path = self.model_settings_path
        thread = ClusterRenderThread(
            store.project,
            address,
            settings_path=path if here else None,
            demo_dir=self.demo_model_dir if here else None,
            paused=paused,
        )
        thread.workersReady.connect(lambda workers: self.message.emit(f"Rendering on the cluster: {workers}", 8000))
        return thread

    def stop(self) -> None:
        """Stop the render thread (the running job goes back to pending at the engine's next check).

        If it does not end within `shutdown_wait_ms` (a call that cannot be interrupted, such as loading
        a model), it is abandoned: its job is put back here, through the store (whose pending writes land
        before the project closes), and the user is told; the thread ends on its own, writing nothing."""
        if self.render_thread is not None:
            thread, self.render_thread = self.render_thread, None
            if thread.shutdown(self.shutdown_wait_ms):
                thread.deleteLater()
            else:
                self._abandoned(thread.abandoned_job)
        self.store = None
        self.panel.set_jobs([])

    def _abandoned(self, job_id: int | None) -> None:
        if job_id is not None and self.store is not None:
            self.store.job_action(lambda session: requeue(session, job_id))
        job = "" if job_id is None else f" Job {job_id} is back in the queue."
        self.message.emit(
            f"Rendering did not stop within {self.shutdown_wait_ms / 1000:g} s: the engine is in a step it cannot "
            f"interrupt (such as loading the model), and is left to end on its own.{job}",
            15000,
        )

    def wake(self) -> None:
        if self.render_thread is not None:
            self.render_thread.wake()

    def request_preview(self, token: int, request: RenderRequest) -> None:
        """A live preview for the render thread to render when the queue is idle (none without a project)."""
        if self.render_thread is not None:
            self.render_thread.request_preview(token, request)

    def clear_preview(self) -> None:
        if self.render_thread is not None:
            self.render_thread.clear_preview()

    def cancel_job(self, job_id: int) -> None:
        """Cancel only that job: a pending one at once (it never touches the running one); the running one
        shows "cancelling…" at once, stops at the engine's next check, and its cancel is stored in the project
        at once, so a crash before the render stops cannot bring it back."""
        self.panel.mark_cancelling(job_id)
        if self.render_thread is not None:
            self.render_thread.cancel_running(job_id)
        self._job_action(lambda session: request_cancel(session, job_id))

    def move_job(self, job_id: int, delta: int) -> None:
        self._job_action(lambda session: move(session, job_id, delta))

    def set_paused(self, paused: bool) -> None:
        if self.render_thread is not None:
            self.render_thread.set_paused(paused)

    def _job_action(self, action: Callable[[Session], object]) -> None:
        if self.store is not None:
            self.store.job_action(action)
            self.wake()

    def _job_started(self, job: JobSnapshot) -> None:
        self.panel.job_started(job)
        if self.store is not None:
            self.store.refresh_jobs()
            self.store.refresh_summaries()

    def _job_ended(self, result: JobResult) -> None:
        self.panel.job_ended(result.job.id, result.figures() if result.outcome is Outcome.DONE else "")
        if self.store is None:
            return
        self.store.refresh_jobs()
        self.store.refresh_summaries()
        if result.outcome.failed:
            self.message.emit(f"Render of job {result.job.id} failed: {result.error}", 15000)
        if result.outcome is Outcome.DONE:
            self.renderFinished.emit(result.job.scene_id)
