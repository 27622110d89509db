"""`render --cluster ADDRESS`: run the project's queue on a Ray cluster (rendering.cluster) with one overall
bar and a line per worker on the console; Ctrl-C puts the running jobs back in the queue."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CommandError, ctrl_c_stops, model_settings_path
from rendering.demo_model import demo_model_dir

if TYPE_CHECKING:
    from projects.database import Project
    from projects.queue import JobSnapshot
    from rendering.cluster_actor import WorkerInfo
    from rendering.outcomes import JobResult


def require_ray() -> None:
    """Before anything is queued: say how to install Ray if it is missing."""
    from rendering.cluster import ClusterError, import_ray

    try:
        import_ray()
    except ClusterError as exc:
        raise CommandError(str(exc)) from exc


def render_on_cluster(args: argparse.Namespace, project: Project, pending: int) -> int:
    """Render every pending job of `project` on the cluster at `args.cluster`; the exit code."""
    from cli.render import report_results
    from rendering.cluster import LOCAL, ClusterDriver, ClusterError, cluster_plan, connect
    from rendering.outcomes import Outcome

    progress = ClusterConsole(pending)
    local = args.cluster == LOCAL  # the workers run here: they read the driver's model settings and demo model
    try:
        connect(args.cluster)
        plan = cluster_plan(getattr(args, "workers", None))
        driver = ClusterDriver(
            project,
            progress,
            plan,
            settings_path=model_settings_path() if local else None,
            demo_dir=demo_model_dir() if local else None,
        )
        with driver:
            driver.start_workers()

            with ctrl_c_stops(driver.stop, progress.interrupted):
                results = driver.run()
    except ClusterError as exc:
        raise CommandError(str(exc)) from exc
    report_results(args, project, results, f"on {plan.count} worker(s)")
    if driver.stopping:
        print("interrupted: the running jobs are back in the queue; run the command again to continue")
        return EXIT_INTERRUPTED
    if driver.lost_all_workers:
        print("every worker was lost; the jobs left are back in the queue")
        return EXIT_FAILED
    final = [r for r in results if r.outcome is not Outcome.REQUEUED]
    stored_all = all(not r.outcome.failed and r.outcome is not Outcome.NOT_STORED for r in final)
    return EXIT_OK if stored_all else EXIT_FAILED


class ClusterConsole:
    """The overall bar and a line per worker, redrawn in place on a terminal; elsewhere (a log, a pipe) one
    line per finished job. The driver's listener."""

    BAR = 24

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.labels: list[str] = []
        self.lines: list[str] = []
        self._drawn = 0

    def workers_ready(self, workers: Sequence[WorkerInfo]) -> None:
        self.labels = [f"worker {n + 1} {info.label}" for n, info in enumerate(workers)]
        self.lines = ["idle"] * len(workers)
        self._write(f"{len(workers)} worker(s) ready: {', '.join(info.label for info in workers)}\n")
        self._draw()

    def job_started(self, job: JobSnapshot, worker: int) -> None:
        self.lines[worker] = f"job {job.id}: starting (the first job loads the model)"
        self._draw()

    def job_progress(self, job_id: int, worker: int, step: int, total: int) -> None:
        self.lines[worker] = f"job {job_id} {_bar(step, total, self.BAR)} {step}/{total} steps"
        self._draw()

    def job_ended(self, result: JobResult, worker: int) -> None:
        from rendering.outcomes import Outcome

        if result.outcome is not Outcome.REQUEUED:
            self.done += 1
        if result.rerolled is not None:
            self.total += 1  # the next seed of its chain, queued first
        self.lines[worker] = "idle"
        self._erase()
        placement = result.placement_words()
        checked = f" · {placement}" if placement else ""
        self._write(
            f"[{self.done}/{self.total}] job {result.job.id} on worker {worker + 1}: {result.outcome} "
            f"in {result.seconds:.1f}s{checked}\n"
        )
        self._draw()

    def interrupted(self) -> None:
        self._erase()
        self._write("stopping: the running jobs go back to the queue (Ctrl-C)...\n")

    def _draw(self) -> None:
        """The overall bar, then one line per worker, over the ones drawn before (on a terminal only)."""
        if not self.live:
            return
        self._erase()
        rows = [f"{_bar(self.done, self.total, self.BAR)} {self.done}/{self.total} jobs"]
        rows += [f"  {label}: {line}" for label, line in zip(self.labels, self.lines, strict=True)]
        self._write("".join(f"{row}\x1b[K\n" for row in rows))
        self._drawn = len(rows)

    def _erase(self) -> None:
        if self.live and self._drawn:
            self._write(f"\x1b[{self._drawn}F\x1b[J")  # up to the first drawn line, clear to the end
            self._drawn = 0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _bar(done: int, total: int, width: int) -> str:
    filled = int(width * done / max(total, 1))
    return "[" + "#" * filled + "-" * (width - filled) + "]"
