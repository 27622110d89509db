"""A render queue served for as long as an app runs: the GUI's render thread runs `serve` on its own
thread; other long-lived callers (a live preview, a farm driver) can do the same.

The runner (models load on first use and stay) and the queue loop are made on the serving thread, so
torch loads there, never on the thread that constructs the worker. It takes the next job whenever it is
woken and not paused, polls for jobs queued by another process, and pauses itself when a job runs out
of memory, or when the project file cannot be written (busy, full disk: the job stays pending). `stop` ends `serve` at the engine's next cancel check; the running job goes back to pending.
`abandon` is for an owner that cannot wait for that: the worker writes nothing more and hands back the job.

When the queue has nothing to do (or is paused), the worker renders live previews (`request_preview`,
see `rendering.live_preview`) with the same runner: the loaded model and its caches serve both. A job
queued while a preview renders (`wake`) cancels the preview, which comes back after the queue is empty.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from projects.database import Project
from projects.errors import ProjectError
from rendering.live_preview import PreviewResult, PreviewSlot, render_preview
from rendering.outcomes import Outcome

if TYPE_CHECKING:  # torch: loaded by `serve`, on the serving thread
    from engine.request import RenderRequest
    from engine.runner import ModelProvider, Runner
    from rendering.placement_check import CheckerSelection
    from rendering.queue_loop import JobListener, QueueLoop

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 2.0  # how often an idle worker looks for jobs queued by another process
OUT_OF_MEMORY_PAUSE = "paused: out of memory (see the failed job); resume when ready"


class QueueWorker:
    def __init__(
        self,
        project: Project,
        provider: ModelProvider,
        listener: JobListener,
        *,
        paused: bool = False,
        preview_every: int = 0,
        on_paused: Callable[[bool, str], None] = lambda _paused, _reason: None,
        on_preview: Callable[[PreviewResult], None] = lambda _result: None,
        select_checker: CheckerSelection | None = None,
    ) -> None:
        self._project = project
        self._select_checker = select_checker  # which placement checker reads a model's renders (default: the demo's)
        self._provider = provider
        self._listener = listener
        self._preview_every = preview_every
        self._on_paused = on_paused
        self._on_preview = on_preview
        self._previews = PreviewSlot()
        self._jobs_waiting = threading.Event()  # set by `wake`: a preview in progress gives way
        self._wake = threading.Event()
        self._paused = paused
        self._quit = False
        self._loop: QueueLoop | None = None

    # --- called from any thread --------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool, reason: str = "") -> None:
        """Pausing lets the running job finish; resuming takes the next job. `on_paused` hears of it."""
        self._paused = paused
        self._on_paused(paused, reason)
        self._wake.set()

    def wake(self) -> None:
        """New jobs were queued."""
        self._jobs_waiting.set()
        self._wake.set()

    def request_preview(self, token: int, request: RenderRequest) -> None:
        """Render `request` as a live preview when the queue has nothing to do, replacing (and cancelling)
        any older one; `on_preview` hears of it with the same `token`. Tokens must increase."""
        self._previews.submit(token, request)
        self._wake.set()

    def clear_preview(self) -> None:
        """Drop the waiting preview and cancel the running one."""
        self._previews.clear()

    def cancel_running(self, job_id: int) -> bool:
        loop = self._loop
        return loop is not None and loop.cancel_running(job_id)

    @property
    def running_job(self) -> int | None:
        loop = self._loop
        return None if loop is None else loop.running_job

    def stop(self) -> None:
        """End `serve` within a step; the running job goes back to pending."""
        self._quit = True
        loop = self._loop
        if loop is not None:
            loop.stop()
        self._wake.set()

    def abandon(self) -> int | None:
        """For an owner that stopped waiting for `serve` to end: stop, and never write to the project again.
        Returns the job left `running` for the owner to put back (`QueueLoop.abandon`)."""
        self._quit = True
        self._wake.set()
        loop = self._loop  # read after `_quit` is set: a loop made later never claims a job
        return None if loop is None else loop.abandon()

    # --- the serving thread ------------------------------------------------------------------

    def serve(self) -> None:
        from engine.runner import Runner
        from rendering.placement_check import PlacementCheck
        from rendering.queue_loop import QueueLoop

        runner = Runner(self._provider)
        check = PlacementCheck() if self._select_checker is None else PlacementCheck(self._select_checker)
        loop = QueueLoop(self._project, runner, self._listener, preview_every=self._preview_every, placement=check)
        self._loop = loop
        while not self._quit:
            if self._paused:
                if not self._serve_preview(runner):
                    self._wake.wait()
                    self._wake.clear()
                continue
            self._jobs_waiting.clear()  # before looking: a job queued from now on interrupts a preview
            try:
                result = loop.run_one()
            except ProjectError as exc:  # the file cannot be written now (busy, disk full): wait for the user
                log.warning("the render loop paused: %s", exc)
                self.set_paused(True, f"paused: {exc}")
                continue
            except Exception:  # a database error must not end the engine; the job stays as it was
                log.exception("the render loop failed")
                result = None
            if result is None:
                if self._serve_preview(runner):
                    continue  # look at the queue again before the next preview
                self._wake.wait(timeout=POLL_INTERVAL_S)  # also polls, for jobs queued by another process
                self._wake.clear()
            elif result.outcome is Outcome.OUT_OF_MEMORY:
                self.set_paused(True, OUT_OF_MEMORY_PAUSE)
            elif result.outcome is Outcome.NOT_STORED:
                self.set_paused(True, f"paused: {result.error}")
        self._loop = None

    def _serve_preview(self, runner: Runner) -> bool:
        """Render the newest waiting preview, if any; True when there was one."""
        pending = self._previews.take()
        if pending is None:
            return False
        token, request = pending
        result = render_preview(
            runner,
            self._previews,
            token,
            request,
            interrupted=lambda: self._quit or (not self._paused and self._jobs_waiting.is_set()),
        )
        if result is not None and not self._quit:
            self._on_preview(result)
        return True
