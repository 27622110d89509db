"""Rendering a project's queue on a Ray cluster. No Qt; Ray is an optional extra (`pip install '.[cluster]'`),
imported only when a cluster is asked for.

The project file stays the single source of truth, written by this process alone (the driver): it claims
pending jobs (projects.queue.claim_next), sends each frozen request to a worker (rendering.cluster_actor,
one Ray actor per GPU, or CPU workers with their torch threads set so they share the cores), and stores
each render as it comes back with the same write a local render uses (rendering.store), in one short
transaction. Workers keep their model loaded between jobs, and do each render's own CPU work too: the
placement check (their node's checker, the thresholds the driver read at the claim) and the PNG and
thumbnail, so that the one writer only compares model hashes and writes.

Faults: a worker that dies or whose node leaves mid-job is dropped and its job goes back to pending for
another worker, at most `MAX_ATTEMPTS` tries per job (then the job fails, in words), as the local queue
bounds a job that keeps crashing the app. `stop` (Ctrl-C, the window closing) stores what already came
back and puts every other running job back to pending in one write; nothing is ever half-written. If the
driver itself dies, its jobs are still `running` in the project and the next open recovers them as after
a local crash (projects.queue.recover_interrupted_jobs); its workers die with it (Ray ties them to it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from engine.placement_report import PlacementThresholds
from projects.database import Project
from projects.errors import DiskFullError, ProjectBusyError, ProjectError, ProjectIOError, QueueError
from projects.models import JobStatus
from projects.placement import placement_thresholds
from projects.queue import MAX_ATTEMPTS, JobSnapshot, claim_next, fail, report_progress, requeue
from rendering.cluster_actor import RemoteFailure, RemoteRender, RenderWorker, WorkerInfo
from rendering.outcomes import JobResult, Outcome
from rendering.store import patiently, store_finished

log = logging.getLogger(__name__)

RAY_MISSING = (
    "rendering on a cluster needs Ray, which is not installed: pip install 'instance-studio[cluster]' "
    "(from a checkout: pip install '.[cluster]')"
)
LOCAL = "auto"  # the address that means "a Ray on this machine" (started if none runs)
TICK_S = 0.2  # the longest the driver waits for a result before looking at progress and `stop`
PROGRESS_INTERVAL_S = 0.5  # how often running jobs' progress is asked for and written
PROGRESS_WAIT_S = 0.05  # a progress write waits this long for another program's lock, then is skipped
STORE_PATIENCE_S = 300.0  # as the local queue: how long a finished render waits for a busy project file
WORKER_START_TIMEOUT_S = 300.0  # workers that cannot start by then: the cluster has no room for them


class ClusterError(Exception):
    """The cluster cannot be used (Ray missing, unreachable, no room for the workers): one line for the user."""


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(RAY_MISSING) from exc
    return ray


def connect(address: str) -> None:
    """Join the cluster at `address`, or with "auto" the Ray on this machine (one is started if none runs)."""
    ray = import_ray()
    if ray.is_initialized():
        return
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address == LOCAL:
            ray.init(**options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise ClusterError(f"could not reach the Ray cluster at {address}: {exc}") from exc


@dataclass(frozen=True)
class WorkerPlan:
    """How many workers, and what each asks Ray for: a GPU each where there are GPUs, else a share of the CPUs
    (`threads` torch threads, as many Ray CPUs, so workers on one node do not fight over its cores)."""

    count: int
    gpus_each: float = 0.0
    threads: int = 0  # 0: torch's default (a GPU worker)

    @property
    def cpus_each(self) -> float:
        return float(self.threads) if self.threads else 1.0


def plan_workers(resources: dict[str, float], nodes: int = 1, workers: int | None = None) -> WorkerPlan:
    """One worker per GPU of the cluster (`resources`: ray.cluster_resources()); without GPUs, `workers` CPU
    workers (default: one per node) sharing the cluster's CPUs. `workers` also caps GPU workers."""
    if workers is not None and workers < 1:
        raise ClusterError(f"a cluster render needs at least one worker, not {workers}")
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return WorkerPlan(min(workers or gpus, gpus), gpus_each=1.0)
    count = workers or max(1, nodes)
    cpus = max(1, int(resources.get("CPU", 1)))
    return WorkerPlan(count, threads=max(1, cpus // count))


def cluster_plan(workers: int | None = None) -> WorkerPlan:
    """The plan for the cluster this process is connected to."""
    ray = import_ray()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return plan_workers(ray.cluster_resources(), nodes, workers)


class ClusterListener(Protocol):
    """What the driver reports, all from the thread that runs it; `worker` indexes `ClusterDriver.workers`."""

    def workers_ready(self, workers: Sequence[WorkerInfo]) -> None: ...

    def job_started(self, job: JobSnapshot, worker: int) -> None: ...

    def job_progress(self, job_id: int, worker: int, step: int, total: int) -> None: ...

    def job_ended(self, result: JobResult, worker: int) -> None: ...


@dataclass
class _Worker:
    handle: Any  # a Ray actor handle of RenderWorker
    info: WorkerInfo | None = None
    alive: bool = True


@dataclass
class _Flight:
    """A job claimed and sent to a worker, its end not yet written."""

    job: JobSnapshot
    worker: int
    ref: Any  # the ObjectRef of its render
    thresholds: PlacementThresholds  # the project's at the claim: what the worker's check reports against
    sent: float = field(default_factory=time.perf_counter)
    progress_ref: Any = None  # a `progress` call on its way back, if any
    step: int = 0
    total: int = 0


class ClusterDriver:
    """Drains the project's queue across the cluster this process is `connect`ed to (see the module's doc).
    A context manager: its workers (and their loaded models) last from the first `run` to the exit, so a
    queue can be run again (after a `stop`, after new jobs) without starting them anew."""

    def __init__(
        self,
        project: Project,
        listener: ClusterListener,
        plan: WorkerPlan,
        *,
        settings_path: Path | None = None,
        demo_dir: Path | None = None,
        store_patience_s: float = STORE_PATIENCE_S,
    ) -> None:
        """`settings_path`, `demo_dir`: the model settings (with the placement checkers) and demo model every
        worker reads; None: each node's own (right for a real cluster; a Ray on this machine may share the
        driver's)."""
        self.project = project
        self.listener = listener
        self.plan = plan
        self.settings_path = settings_path
        self.demo_dir = demo_dir
        self.store_patience_s = store_patience_s
        self.workers: list[_Worker] = []
        self.overheads_s: list[float] = []  # per stored job: round trip minus the worker's own time
        self.finish_s: list[float] = []  # per stored job: the worker's placement check and PNG encoding
        self.store_s: list[float] = []  # per stored job: the driver's hash check and write (one writer: the ceiling)
        self.lost_all_workers = False
        self._stop = threading.Event()
        self._flights: dict[int, _Flight] = {}  # by job id
        self._deaths: dict[int, int] = {}  # job id -> workers lost while rendering it
        self._hashes: dict[str, tuple[dict[str, str], str]] = {}  # model id -> first hashes seen, by which worker
        self._last_progress = 0.0

    def stop(self) -> None:
        """Stop soon (thread-safe): renders that came back are stored, the other running jobs go back to pending."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start_workers(self) -> list[WorkerInfo]:
        """Start the plan's workers and wait until each is up (they load their model at their first job)."""
        ray = import_ray()
        actor = ray.remote(RenderWorker).options(
            num_cpus=self.plan.cpus_each, num_gpus=self.plan.gpus_each, max_concurrency=2, max_restarts=0
        )
        args = (
            None if self.settings_path is None else str(self.settings_path),
            None if self.demo_dir is None else str(self.demo_dir),
            self.plan.threads,
        )
        self.workers = [_Worker(actor.remote(*args)) for _ in range(self.plan.count)]
        try:
            infos: list[WorkerInfo] = ray.get(
                [worker.handle.info.remote() for worker in self.workers], timeout=WORKER_START_TIMEOUT_S
            )
        except ray.exceptions.GetTimeoutError as exc:
            self.shutdown()
            raise ClusterError(
                f"the cluster has no room for {self.plan.count} worker(s) of {self.plan.gpus_each:g} GPU and "
                f"{self.plan.cpus_each:g} CPU each (waited {WORKER_START_TIMEOUT_S:.0f} s); ask for fewer workers"
            ) from exc
        for worker, info in zip(self.workers, infos, strict=True):
            worker.info = info
        self.listener.workers_ready(infos)
        return infos

    def shutdown(self) -> None:
        """End the workers (their models go with them)."""
        ray = import_ray()
        for worker in self.workers:
            if worker.alive:
                ray.kill(worker.handle)
                worker.alive = False

    def __enter__(self) -> ClusterDriver:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    def run(self) -> list[JobResult]:
        """Render until the queue is empty, `stop`, or no worker is left. A stopped driver runs again once
        `stop` is cleared by `resume`."""
        if self.project.read_only:
            return []
        if not self.workers:
            self.start_workers()
        ray = import_ray()
        results: list[JobResult] = []
        try:
            while True:
                if not self.stopping:
                    self._dispatch()
                if not self._flights:
                    break
                refs = [flight.ref for flight in self._flights.values()]
                ready, _ = ray.wait(refs, num_returns=1, timeout=TICK_S)
                if ready:  # and whatever else is back by now
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    flight = next(f for f in self._flights.values() if f.ref == ref)
                    result = self._collect(flight)
                    if result is not None:
                        results.append(result)
                if self.stopping:
                    results += self._requeue_in_flight()
                    break
                self._report_progress()
                if not any(worker.alive for worker in self.workers):
                    self.lost_all_workers = True
                    results += self._requeue_in_flight()
                    break
        finally:
            if self._flights:  # an exception on the way: leave nothing running that no one renders
                self._requeue_in_flight()
        return results

    def resume(self) -> None:
        """Clear a `stop`, for another `run` with the same workers."""
        self._stop.clear()

    # --- the loop's steps ------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Give every idle live worker a job, while there are pending ones."""
        busy = {flight.worker for flight in self._flights.values()}
        for index, worker in enumerate(self.workers):
            if not worker.alive or index in busy:
                continue
            with self.project.write() as session:
                job = claim_next(session)
                thresholds = placement_thresholds(session) if job is not None else PlacementThresholds()
            if job is None:
                return
            ref = worker.handle.render.remote(job.id, job.request.to_json(), thresholds)
            self._flights[job.id] = _Flight(job, index, ref, thresholds)
            self.listener.job_started(job, index)

    def _collect(self, flight: _Flight) -> JobResult | None:
        """Store or settle a job whose render came back (or whose worker is gone)."""
        ray = import_ray()
        del self._flights[flight.job.id]
        elapsed = _since(flight.sent)
        try:
            reply = ray.get(flight.ref)
        except ray.exceptions.RayTaskError as exc:  # the call itself broke (not the worker): fail the job
            result = self._end_failed(flight, f"the worker could not render it: {exc}", Outcome.FAILED, elapsed())
        except ray.exceptions.RayError as exc:  # the worker died or its node left
            result = self._worker_lost(flight, exc, elapsed())
        else:
            if isinstance(reply, RemoteRender):
                self.overheads_s.append(max(0.0, elapsed() - reply.worker_seconds))
                self.finish_s.append(reply.finish_seconds)
                storing = time.perf_counter()
                result = self._store(flight, reply, elapsed)
                self.store_s.append(time.perf_counter() - storing)
            else:
                result = self._settle_failure(flight, reply, elapsed())
        self.listener.job_ended(result, flight.worker)
        return result

    def _store(self, flight: _Flight, reply: RemoteRender, elapsed: Callable[[], float]) -> JobResult:
        job = flight.job
        mismatch = self._hash_mismatch(job, reply, flight.worker)
        if mismatch:
            return self._end_failed(flight, mismatch, Outcome.FAILED, elapsed())

        def attempt() -> JobResult:
            with self.project.write() as session:
                return store_finished(
                    session, job, reply.output, elapsed, notes=reply.notes, reused_instances=reply.reused_instances
                )

        try:
            return patiently(attempt, self.store_patience_s)
        except (ProjectBusyError, DiskFullError, ProjectIOError) as exc:
            # As the local queue: the file will not take renders now; every job behind would meet the same wall.
            self.stop()
            try:
                patiently(lambda: self._write_requeue(job.id), self.store_patience_s)
                where = "the job is back in the queue"
            except ProjectError as again:
                log.warning("job %s could not be put back: %s", job.id, again)
                where = "the job goes back to the queue when the project is next opened"
            return JobResult(job, Outcome.NOT_STORED, elapsed(), error=f"the render was not stored ({exc}); {where}")

    def _hash_mismatch(self, job: JobSnapshot, reply: RemoteRender, worker: int) -> str:
        """Every node reads its own model files: a worker whose files differ from the first worker's for the
        same model would store a different picture for the same request. Say so instead."""
        model_id = job.request.model_id
        label = self._label(worker)
        hashes = reply.output.model_hashes
        known = self._hashes.setdefault(model_id, (dict(hashes), label))
        for name, value in hashes.items():
            first = known[0].get(name)
            if first is not None and first != value:
                return (
                    f"the model files on {label} differ from those on {known[1]} ({model_id}: {name} "
                    f"{value[:12]} vs {first[:12]}); give every node the same files. The render is not stored"
                )
        return ""

    def _settle_failure(self, flight: _Flight, reply: RemoteFailure, seconds: float) -> JobResult:
        job = flight.job
        if reply.kind == "cancelled":  # the user's cancel, stored in the project, reached the worker
            with self.project.write() as session:
                status = requeue(session, job.id).status  # a job asked to be cancelled ends cancelled
            if status is JobStatus.CANCELLED:
                return JobResult(job, Outcome.CANCELLED, seconds)
            return JobResult(job, Outcome.REQUEUED, seconds)
        outcome = Outcome.OUT_OF_MEMORY if reply.kind == "out-of-memory" else Outcome.FAILED
        return self._end_failed(flight, reply.message, outcome, seconds)

    def _worker_lost(self, flight: _Flight, problem: Exception, seconds: float) -> JobResult:
        """The worker rendering `flight` is gone: drop it; the job goes back for another, within its attempts."""
        job = flight.job
        label = self._label(flight.worker)
        self.workers[flight.worker].alive = False
        deaths = self._deaths[job.id] = self._deaths.get(job.id, 0) + 1
        log.warning("worker %s was lost while rendering job %s: %s", label, job.id, problem)
        if deaths >= MAX_ATTEMPTS:
            message = f"{deaths} workers were lost while rendering it (last: {label}); retry it if that was not caused by this job"
            return self._end_failed(flight, message, Outcome.FAILED, seconds)
        with self.project.write() as session:
            requeue(session, job.id)
        return JobResult(
            job, Outcome.REQUEUED, seconds, error=f"worker {label} was lost; the job is back in the queue"
        )

    def _end_failed(self, flight: _Flight, message: str, outcome: Outcome, seconds: float) -> JobResult:
        with self.project.write() as session:
            try:
                fail(session, flight.job.id, message)
            except QueueError:  # cancelled meanwhile by the user: it stays as it ended
                return JobResult(flight.job, Outcome.CANCELLED, seconds)
        return JobResult(flight.job, outcome, seconds, error=message)

    def _requeue_in_flight(self) -> list[JobResult]:
        """Every job still out goes back to pending, in one write; the workers are told to stop rendering them."""
        flights = list(self._flights.values())
        self._flights.clear()
        if not flights:
            return []
        for flight in flights:
            worker = self.workers[flight.worker]
            if worker.alive:
                worker.handle.cancel.remote(flight.job.id)
        results = []
        with self.project.write() as session:
            for flight in flights:
                try:
                    status = requeue(session, flight.job.id).status
                except QueueError as exc:  # it ended meanwhile (deleted with its scene): nothing to put back
                    log.warning("job %s not put back: %s", flight.job.id, exc)
                    continue
                outcome = Outcome.CANCELLED if status is JobStatus.CANCELLED else Outcome.REQUEUED
                results.append(JobResult(flight.job, outcome, _since(flight.sent)()))
        worker_of = {flight.job.id: flight.worker for flight in flights}
        for result in results:
            self.listener.job_ended(result, worker_of[result.job.id])
        return results

    def _report_progress(self) -> None:
        """Ask running workers how far they are; write it, and pass on a cancel the project holds."""
        ray = import_ray()
        for flight in self._flights.values():
            if flight.progress_ref is not None:
                done, _ = ray.wait([flight.progress_ref], timeout=0)
                if done:
                    try:
                        job_id, step, total = ray.get(flight.progress_ref)
                    except ray.exceptions.RayError:  # the worker is gone: its render's result will say so
                        job_id = None
                    flight.progress_ref = None
                    if job_id == flight.job.id and (step, total) != (flight.step, flight.total):
                        flight.step, flight.total = step, total
                        self.listener.job_progress(flight.job.id, flight.worker, step, total)
        now = time.perf_counter()
        if now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        for flight in self._flights.values():
            if flight.progress_ref is None:
                flight.progress_ref = self.workers[flight.worker].handle.progress.remote()
        try:
            with self.project.write(wait=PROGRESS_WAIT_S) as session:
                cancelled = [
                    flight
                    for flight in self._flights.values()
                    if flight.total and report_progress(session, flight.job.id, flight.step, flight.total)
                ]
        except ProjectError as exc:  # progress is a nicety; the renders go on
            log.warning("progress not stored: %s", exc)
            return
        for flight in cancelled:
            self.workers[flight.worker].handle.cancel.remote(flight.job.id)

    def _write_requeue(self, job_id: int) -> None:
        with self.project.write() as session:
            requeue(session, job_id)

    def _label(self, worker: int) -> str:
        info = self.workers[worker].info
        return info.label if info is not None else f"worker {worker + 1}"


def _since(start: float) -> Callable[[], float]:
    """Seconds since `start`, as a function (a result's time is read when its write is done)."""
    return lambda: time.perf_counter() - start
