"""Taking jobs from a project's queue and rendering them: the loop body shared by the GUI's render thread
and the headless `render` command. No Qt here, so the command runs without a display. This module
imports torch (through `engine.runner`); import it where rendering happens, not on a GUI thread.

One job at a time: claim it (a short write), render it through `engine.runner`, then store the PNG, a
thumbnail and the metadata in one short write. Progress reaches the database at most twice a second.
Stopping (the window closes, Ctrl-C) puts the running job back to pending; cancelling it (`cancel_running`,
or a cancel request stored in the project, read with each progress write) marks it cancelled; both take
effect at the engine's next check (before every UNet call and between its blocks). An owner that cannot
wait for that (one uninterruptible call, a model still loading) `abandon`s the loop: from then on it
writes nothing, and the owner puts the job back itself.

A finished render is not given up lightly: while another program holds the project's write lock, storing
it is retried with backoff for up to `store_patience_s`. If the file stays busy, or the disk is full, the
job goes back to pending (outcome NOT_STORED, its error says why) and the loop stops: every job behind it
would meet the same wall. Progress writes never wait for the lock: a busy file only skips one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from engine.placement_report import PlacementThresholds
from engine.runner import OutOfMemoryRenderError, RenderError, RenderResult, Runner
from engine.sampler import RenderCancelled
from projects.database import Project
from projects.errors import DiskFullError, ProjectBusyError, ProjectError, ProjectIOError
from projects.models import JobStatus
from projects.placement import placement_thresholds
from projects.queue import JobSnapshot, RenderOutput, cancel, claim_next, fail, report_progress, requeue
from rendering.outcomes import JobPhase, JobResult, Outcome
from rendering.placement_check import PlacementCheck, checked_output
from rendering.store import patiently, store_finished

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL_S = 0.5
PROGRESS_WAIT_S = 0.05  # a progress write waits this long for another program's lock, then is skipped
STORE_PATIENCE_S = 300.0  # how long a finished render keeps trying to reach a busy project file


class JobListener(Protocol):
    """What the loop reports; every call comes from the loop's thread. A listener may also have
    `job_phase(job_id, phase: JobPhase)`, told what a started job does before its first step (a model loading)."""

    def job_started(self, job: JobSnapshot) -> None: ...

    def job_progress(self, job_id: int, step: int, total: int, preview: npt.NDArray[np.uint8] | None) -> None: ...

    def job_ended(self, result: JobResult) -> None: ...


class QueueLoop:
    def __init__(
        self,
        project: Project,
        runner: Runner,
        listener: JobListener,
        *,
        preview_every: int = 0,
        store_patience_s: float = STORE_PATIENCE_S,
        placement: PlacementCheck | None = None,
    ) -> None:
        self.project = project
        # Checks every render whose model has a checker (the demo model's, without any settings).
        self.placement = placement or PlacementCheck()
        self.runner = runner
        self.listener = listener
        self.preview_every = preview_every
        self.store_patience_s = store_patience_s
        self._stop = threading.Event()
        self._cancel_lock = threading.Lock()
        self._cancelled: set[int] = set()
        self.running_job: int | None = None
        # Every write of the loop holds this; `abandon` takes it, so none starts after it returns.
        self._write_lock = threading.Lock()
        self._abandoned = False
        self._open_job: int | None = None  # claimed, its end not yet written

    def stop(self) -> None:
        """Stop within a step; the running job goes back to pending (thread-safe)."""
        self._stop.set()

    def abandon(self) -> int | None:
        """Stop, and write nothing to the project from now on (thread-safe): for an owner that closes the
        project without waiting for the loop's thread. Returns the job claimed and not yet ended, still
        `running` in the project, for the owner to put back (`projects.queue.requeue`); None if none."""
        self._stop.set()
        with self._write_lock:
            self._abandoned = True
            return self._open_job

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def cancel_running(self, job_id: int) -> bool:
        """Cancel `job_id` if it is the one rendering now (thread-safe). Pending jobs are the caller's to
        cancel in the database: they never affect the running one."""
        with self._cancel_lock:
            if self.running_job != job_id:
                return False
            self._cancelled.add(job_id)
            return True

    def run_until_empty(self, should_continue: Callable[[], bool] = lambda: True) -> list[JobResult]:
        results: list[JobResult] = []
        while not self.stopping and should_continue():
            result = self.run_one()
            if result is None:
                break
            results.append(result)
            if result.outcome in (Outcome.OUT_OF_MEMORY, Outcome.NOT_STORED):
                break  # every job behind it would end the same way: let the user decide
        return results

    def run_one(self) -> JobResult | None:
        """Claim and render the next pending job; None when the queue is empty (or stopping, or the project
        is read-only: nothing can be claimed or stored)."""
        if self.stopping or self.project.read_only:
            return None
        with self._write() as session:
            job = None if session is None else claim_next(session)
            self._open_job = None if job is None else job.id
            # What the check reports against; the re-roll judges by the thresholds current when it is stored.
            thresholds = placement_thresholds(session) if session is not None and job else PlacementThresholds()
        if job is None:
            return None
        with self._cancel_lock:
            self.running_job = job.id
        self.listener.job_started(job)
        started = time.perf_counter()
        try:
            result = self._render(job, started, thresholds)
        finally:
            with self._cancel_lock:
                self.running_job = None
                self._cancelled.discard(job.id)
        self.listener.job_ended(result)
        return result

    def _render(self, job: JobSnapshot, started: float, thresholds: PlacementThresholds) -> JobResult:
        last_write = [0.0]

        def on_progress(step: int, total: int, preview: npt.NDArray[np.uint8] | None) -> None:
            self.listener.job_progress(job.id, step, total, preview)
            now = time.perf_counter()
            if now - last_write[0] >= PROGRESS_WRITE_INTERVAL_S or step == total:
                last_write[0] = now
                try:
                    with self._write(wait=PROGRESS_WAIT_S) as session:
                        # A cancel stored by another process (or by the window, through the store) lands here.
                        if session is not None and report_progress(session, job.id, step, total):
                            with self._cancel_lock:
                                self._cancelled.add(job.id)
                except ProjectError as exc:  # progress is a nicety; the render goes on
                    log.warning("progress of job %s not stored: %s", job.id, exc)

        def should_cancel() -> bool:
            return self._stop.is_set() or job.id in self._cancelled

        def elapsed() -> float:
            return time.perf_counter() - started

        def on_loading() -> None:
            phase = getattr(self.listener, "job_phase", None)
            if phase is not None:
                phase(job.id, JobPhase.LOADING_MODEL)

        try:
            rendered = self.runner.render(
                job.request,
                on_progress=on_progress,
                preview_every=self.preview_every,
                should_cancel=should_cancel,
                on_loading=on_loading,
            )
        except RenderCancelled:
            with self._ending() as session:
                if job.id in self._cancelled:
                    if session is not None:
                        cancel(session, job.id)
                    return JobResult(job, Outcome.CANCELLED, elapsed())
                # Back to pending, unless the user's cancel reached the project first: then it is cancelled.
                if session is not None and requeue(session, job.id).status is JobStatus.CANCELLED:
                    return JobResult(job, Outcome.CANCELLED, elapsed())
            return JobResult(job, Outcome.REQUEUED, elapsed())
        except OutOfMemoryRenderError as exc:
            return self._failed(job, str(exc), Outcome.OUT_OF_MEMORY, elapsed())
        except RenderError as exc:
            return self._failed(job, str(exc), Outcome.FAILED, elapsed())
        except Exception as exc:  # a bug must fail the job, not kill the thread that runs the queue
            log.exception("job %s failed unexpectedly", job.id)
            return self._failed(job, f"unexpected error: {exc}", Outcome.FAILED, elapsed())
        rendered, output = checked_output(rendered, self.placement, thresholds)
        try:
            return patiently(lambda: self._store(job, output, rendered, elapsed), self.store_patience_s)
        except (ProjectBusyError, DiskFullError, ProjectIOError) as exc:
            return self._not_stored(job, exc, elapsed())

    def _store(
        self, job: JobSnapshot, output: RenderOutput, rendered: RenderResult, elapsed: Callable[[], float]
    ) -> JobResult:
        """One attempt at storing a finished render (the image, the thumbnail, the job done) in one write."""
        with self._ending() as session:
            if session is None:  # abandoned: the owner put the job back, and the image is not kept
                return JobResult(job, Outcome.REQUEUED, elapsed())
            return store_finished(
                session, job, output, elapsed, notes=rendered.notes, reused_instances=rendered.reused_instances
            )

    def _not_stored(self, job: JobSnapshot, problem: ProjectError, seconds: float) -> JobResult:
        """The project file would not take the render: put the job back to pending (as patiently), say why."""
        try:
            patiently(lambda: self._requeue(job), self.store_patience_s)
            where = "the job is back in the queue"
        except ProjectError as exc:
            log.warning("job %s could not be put back: %s", job.id, exc)
            where = "the job goes back to the queue when the project is next opened"
        log.warning("render of job %s not stored: %s", job.id, problem)
        return JobResult(job, Outcome.NOT_STORED, seconds, error=f"the render was not stored ({problem}); {where}")

    def _requeue(self, job: JobSnapshot) -> None:
        with self._ending() as session:
            if session is not None:
                requeue(session, job.id)

    def _failed(self, job: JobSnapshot, message: str, outcome: Outcome, seconds: float) -> JobResult:
        with self._ending() as session:
            if session is None:
                return JobResult(job, Outcome.REQUEUED, seconds)
            fail(session, job.id, message)
        return JobResult(job, outcome, seconds, error=message)

    @contextmanager
    def _write(self, wait: float | None = None) -> Iterator[Session | None]:
        """A write transaction, or None once the loop is abandoned (the project is no longer its to write).
        `wait`: how long to wait for another program's write lock (default: the project's busy timeout)."""
        with self._write_lock:
            if self._abandoned:
                yield None
                return
            with self.project.write(wait=wait) as session:
                yield session

    @contextmanager
    def _ending(self) -> Iterator[Session | None]:
        """The write that ends the open job (or None, abandoned); after it, `abandon` has no job to hand back."""
        with self._write() as session:
            yield session
            self._open_job = None
