"""One render worker on a Ray cluster: a Ray actor that keeps a `Runner` (and so its loaded model) for its
whole life and renders the frozen requests the driver (rendering.cluster) sends it. It never touches a
project file. It also does the rest of each render's own work, so the driver (one process for the whole
cluster) only writes: it runs the placement check with its own node's checker and the thresholds the
driver read at the claim, and encodes the PNG and thumbnail (rendering.placement_check.checked_output, as
a local render); it sends that `RenderOutput` back and the driver stores it.

The class is plain Python; the driver makes it an actor (`ray.remote(RenderWorker)`), so importing this
module needs neither Ray nor torch. Model files are those configured on the worker's own node (its
models.json and demo model), unless the driver names others (a local cluster shares the driver's).
A checker that fails costs the check, not the render (stored unchecked, with a note). Every failure a
user can act on comes back as a `RemoteFailure`, never as an exception: an exception from an actor means
the worker itself is gone.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.model_settings import ModelSettings
    from engine.placement_report import PlacementThresholds
    from engine.request import RenderRequest
    from engine.runner import Runner
    from projects.queue import RenderOutput
    from rendering.placement_check import PlacementCheck


@dataclass(frozen=True)
class WorkerInfo:
    """Where a worker runs, for the progress lines and the logs."""

    host: str
    pid: int
    threads: int
    gpus: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        where = f"GPU {','.join(self.gpus)}" if self.gpus else f"{self.threads} CPU thread(s)"
        return f"{self.host}:{self.pid} ({where})"


@dataclass(frozen=True)
class RemoteRender:
    """A finished, checked and encoded render: what the driver stores (`output`: the PNG, thumbnail,
    placement, model hashes...) and what the job's result reports."""

    output: RenderOutput
    notes: tuple[str, ...] = ()  # the engine's, and the check's when it failed
    reused_instances: tuple[int, ...] = ()
    worker_seconds: float = 0.0  # from the request's arrival to the output's return, on the worker
    finish_seconds: float = 0.0  # of which the placement check and the encoding


@dataclass(frozen=True)
class RemoteFailure:
    """A render that ended without an image: `kind` is "cancelled", "out-of-memory" or another
    engine.runner.RenderError kind; `message` says why in words."""

    kind: str
    message: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class RenderWorker:
    """The actor's body. Two calls may run at once (the driver's `max_concurrency=2`): a render, and a
    `progress` or `cancel` asked while it runs."""

    def __init__(self, settings_path: str | None = None, demo_dir: str | None = None, threads: int = 0) -> None:
        import torch

        from engine.user_data import model_settings_path  # this node's

        if threads > 0:  # several CPU workers on one machine: each gets its share of the cores, not all of them
            torch.set_num_threads(threads)
        self._threads = torch.get_num_threads()
        self._settings_path = Path(settings_path) if settings_path else model_settings_path()
        self._demo_dir = Path(demo_dir) if demo_dir else None
        self._runner: Runner | None = None
        self._check: PlacementCheck | None = None
        self._setup_error = ""
        self._lock = threading.Lock()  # the progress and cancel state, shared with the second call
        self._rendering = threading.Lock()  # one render at a time (a cancelled one may still be ending)
        self._job: int | None = None
        self._step = self._total = 0
        self._cancelled: set[int] = set()
        self._make_runner()

    def _make_runner(self) -> None:
        """The runner, built once; its provider loads a model at the first render that asks for it."""
        from engine.model_settings import ModelSettings, ModelSettingsError
        from engine.providers import settings_provider
        from engine.runner import Runner
        from rendering.demo_model import demo_model_dir
        from rendering.placement_check import PlacementCheck, settings_checkers

        try:
            settings = ModelSettings.load(self._settings_path, missing_ok=True)
        except ModelSettingsError as exc:
            self._setup_error = f"on worker {socket.gethostname()}: {exc}"
            return
        self._runner = Runner(settings_provider(settings, demo_dir=self._demo_dir or demo_model_dir()))
        self._check = PlacementCheck(settings_checkers(self._node_settings))

    def _node_settings(self) -> ModelSettings:
        """This node's model settings, read again for each check (as locally: a checker folder set meanwhile
        is used); an unreadable file fails the check, which stores the render unchecked and says why."""
        from engine.model_settings import ModelSettings

        return ModelSettings.load(self._settings_path, missing_ok=True)

    def info(self) -> WorkerInfo:
        gpus: tuple[str, ...] = ()
        try:
            import ray

            gpus = tuple(str(gpu) for gpu in ray.get_gpu_ids())
        except Exception:
            gpus = ()
        return WorkerInfo(socket.gethostname(), os.getpid(), self._threads, gpus)

    def progress(self) -> tuple[int | None, int, int]:
        """(the job rendering now or None, its step, its steps)."""
        with self._lock:
            return self._job, self._step, self._total

    def cancel(self, job_id: int) -> None:
        """Stop `job_id` at the engine's next check, if it is rendering here (a late cancel is ignored: the job
        may come back to this worker later)."""
        with self._lock:
            if self._job == job_id:
                self._cancelled.add(job_id)

    def render(self, job_id: int, request_json: str, thresholds: PlacementThresholds) -> RemoteRender | RemoteFailure:
        """Render `request_json`, check it by `thresholds` (the project's at the claim) and encode it."""
        from engine.request import RenderRequest

        arrived = time.perf_counter()
        if self._runner is None or self._check is None:
            return RemoteFailure("model-files", self._setup_error)
        with self._rendering:
            request = RenderRequest.from_json(request_json)
            return self._render(self._runner, self._check, job_id, request, thresholds, arrived)

    def _render(
        self,
        runner: Runner,
        check: PlacementCheck,
        job_id: int,
        request: RenderRequest,
        thresholds: PlacementThresholds,
        arrived: float,
    ) -> RemoteRender | RemoteFailure:
        from engine.runner import RenderCancelled, RenderError
        from rendering.placement_check import checked_output

        with self._lock:
            self._job, self._step, self._total = job_id, 0, 0

        def on_progress(step: int, total: int, _preview: object) -> None:
            with self._lock:
                self._step, self._total = step, total

        def should_cancel() -> bool:
            with self._lock:
                return job_id in self._cancelled

        try:
            result = runner.render(request, on_progress=on_progress, should_cancel=should_cancel)
        except RenderCancelled:
            return RemoteFailure("cancelled")
        except RenderError as exc:
            return RemoteFailure(exc.kind, str(exc))
        except Exception as exc:
            return RemoteFailure("error", f"unexpected error on worker {socket.gethostname()}: {exc}")
        finally:
            with self._lock:
                self._job = None
                self._cancelled.discard(job_id)
        finishing = time.perf_counter()
        try:
            result, output = checked_output(result, check, thresholds)
        except Exception as exc:  # encoding broke (the check's own failures are notes): the job fails, in words
            return RemoteFailure("error", f"the render could not be encoded on worker {socket.gethostname()}: {exc}")
        done = time.perf_counter()
        return RemoteRender(
            output=output,
            notes=result.notes,
            reused_instances=result.reused_instances,
            worker_seconds=done - arrived,
            finish_seconds=done - finishing,
        )
