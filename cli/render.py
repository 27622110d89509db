"""`render`: queue the chosen scenes (or, with --retry-failed, their failed jobs again), then run the queue
(rendering.queue_loop) with a progress bar on the console; Ctrl-C stops within a step and puts the running
job back in the queue. Every render whose model has a placement checker is checked; with --until-placed N,
a render that missed an instance queues the next seed, up to N seeds per scene."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CommandError, ctrl_c_stops, load_model_settings
from rendering.demo_model import demo_model_dir

if TYPE_CHECKING:
    from engine.model_settings import ModelSettings
    from projects.database import Project
    from projects.queue import JobSnapshot
    from rendering.outcomes import JobResult


def cmd_render(args: argparse.Namespace) -> int:
    """Queue the chosen scenes (if any), then render every pending job with a progress bar."""
    from cli.preflight import print_warnings, scene_warnings
    from engine.providers import settings_provider
    from engine.runner import Runner
    from projects.database import Project
    from projects.models import JobStatus
    from projects.queue import retry_failed, status_counts
    from projects.scenes import find_scene, list_scenes, queue_scene, random_seed
    from rendering.outcomes import Outcome
    from rendering.placement_check import PlacementCheck, settings_checkers
    from rendering.queue_loop import QueueLoop  # imports torch

    until_placed = check_until_placed(args)
    settings = load_model_settings()
    if args.cluster:  # before anything is queued: without Ray, say how to install it
        from cli.cluster_render import require_ray

        require_ray()
    with Project.open(args.project) as project:
        if project.report.requeued_jobs:
            print(f"{len(project.report.requeued_jobs)} job(s) interrupted last time are back in the queue")
        warnings: list[str] = []
        if args.retry_failed and args.variations:
            raise CommandError("--variations queues new renders; it does not go with --retry-failed")
        with project.write() as session:
            scenes = list_scenes(session) if args.all else [find_scene(session, ref) for ref in args.scenes or []]
            if args.retry_failed:
                # The failed jobs of the chosen scenes (of all, when none is chosen) go back to the queue as
                # they were asked; no new render is queued.
                retried = retry_failed(session, [scene.id for scene in scenes] if args.scenes else None)
                print(f"{len(retried)} failed job(s) are back in the queue")
                scenes = []
            for scene in scenes:
                if args.variations:
                    for _ in range(args.variations):
                        job = queue_scene(session, scene, seed=random_seed(), until_placed=until_placed)
                else:
                    job = queue_scene(session, scene, until_placed=until_placed)
                if until_placed:  # refused before anything is queued: this write rolls back
                    require_checker(scene.name, job.request.model_id, settings)
                warnings += scene_warnings(scene.name, job.request)  # what the demo model cannot do
        print_warnings(warnings)
        with project.read() as session:
            pending = status_counts(session)[JobStatus.PENDING]
        if pending == 0:
            print("nothing to render: the queue is empty (give --scenes or --all)")
            if args.report is not None:
                write_report(args.report, [], {})
            return EXIT_OK
        if args.cluster:
            from cli.cluster_render import render_on_cluster

            return render_on_cluster(args, project, pending)
        progress = ConsoleProgress(pending)
        provider = settings_provider(settings, demo_dir=demo_model_dir())
        check = PlacementCheck(settings_checkers(lambda: settings))
        loop = QueueLoop(project, Runner(provider), progress, placement=check)

        with ctrl_c_stops(loop.stop, progress.interrupted):
            results = loop.run_until_empty()
        report_results(args, project, results, f"in {sum(r.seconds for r in results):.1f} s")
    if loop.stopping:
        print("interrupted: the running job is back in the queue; run the command again to continue")
        return EXIT_INTERRUPTED
    stored_all = all(not r.outcome.failed and r.outcome is not Outcome.NOT_STORED for r in results)
    return EXIT_OK if stored_all else EXIT_FAILED


def report_results(args: argparse.Namespace, project: Project, results: list[JobResult], where: str) -> None:
    """After a run (here or on a cluster): the --report file if asked for, then the summary on the console: the
    outcomes, how many scenes ended fully placed, and each error. `where`: "in 12.3 s", "on 2 worker(s)"."""
    from projects.scenes import list_scenes
    from rendering.outcomes import Outcome

    if args.report is not None:
        with project.read() as session:
            names = {scene.id: scene.name for scene in list_scenes(session)}
        write_report(args.report, results, names)
    counts = {outcome: sum(1 for r in results if r.outcome is outcome) for outcome in Outcome}
    summary = ", ".join(f"{n} {outcome.value}" for outcome, n in counts.items() if n)
    print(f"\nsummary: {summary or 'nothing rendered'} {where}")
    placement = placement_summary(results)
    if placement:
        print(placement)
    for result in results:
        if result.error:
            print(f"  job {result.job.id}: {result.error}")


def check_until_placed(args: argparse.Namespace) -> int:
    """--until-placed N as the seeds a re-roll chain may try (0: none asked for); a clear error otherwise."""
    from projects.queue import MAX_UNTIL_PLACED

    if args.until_placed is None:
        return 0
    if not 1 <= args.until_placed <= MAX_UNTIL_PLACED:
        raise CommandError(f"--until-placed takes 1 to {MAX_UNTIL_PLACED} seeds, not {args.until_placed}")
    if args.retry_failed:
        raise CommandError("--until-placed queues new renders; it does not go with --retry-failed")
    if not (args.all or args.scenes):
        raise CommandError("--until-placed queues new renders: give --scenes or --all")
    return int(args.until_placed)


def require_checker(scene_name: str, model_id: str, settings: ModelSettings) -> None:
    """Refuse --until-placed for a scene whose model's renders nothing can check (without loading a checker)."""
    from engine.model_ids import DEMO

    if model_id != DEMO and settings.checker is None:
        raise CommandError(
            f"scene {scene_name!r} renders with {model_id!r}, whose renders no placement checker reads, so "
            "--until-placed cannot tell a miss: set one with `main.py models set --checker FOLDER` "
            "(an OWLv2 or Grounding DINO folder)"
        )


def placement_summary(results: list[JobResult]) -> str | None:
    """How many scenes have a render with every instance placed, and the renders per scene it took, over
    the scenes whose renders were checked; None when none was."""
    from rendering.outcomes import Outcome

    per_scene: dict[int | None, list[JobResult]] = {}
    for result in results:
        if result.outcome is Outcome.DONE and result.placement_summary is not None:
            per_scene.setdefault(result.job.scene_id, []).append(result)
    if not per_scene:
        return None
    placed = sum(any(r.all_placed for r in checked) for checked in per_scene.values())
    renders = sum(len(checked) for checked in per_scene.values()) / len(per_scene)
    return f"placement: {placed} of {len(per_scene)} scene(s) fully placed, {renders:.1f} render(s) per scene"


def write_report(path: Path, results: list[JobResult], scene_names: dict[int, str]) -> None:
    """One JSON object per finished job: its scene's name, the job id, its seed, the render time in seconds,
    how many of its instances the engine reused from an earlier render (of how many), and its placement
    check ("all placed", "1 of 3 missed"; null when not checked)."""
    from common.atomic_files import write_text_atomic
    from rendering.outcomes import Outcome

    report = [
        {
            "scene": scene_names.get(result.job.scene_id or -1),
            "job": result.job.id,
            "seed": result.job.request.seed,
            "seconds": round(result.seconds, 3),
            "reused_instances": len(result.reused_instances),
            "instances": result.instance_count,
            "placement": result.placement_summary,
        }
        for result in results
        if result.outcome is Outcome.DONE
    ]
    try:
        write_text_atomic(path, json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise CommandError(f"{path}: the report could not be written: {exc.strerror or exc}") from exc
    print(f"report of {len(report)} finished job(s) written to {path}")


class ConsoleProgress:
    """One progress bar per job and the overall count, redrawn in place on stderr (the loop's listener)."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.job_label = ""
        self.started = 0.0

    def job_started(self, job: JobSnapshot) -> None:
        self.started = time.perf_counter()
        self.job_label = f"job {job.id}"

    def job_phase(self, job_id: int, phase: object) -> None:
        sys.stderr.write(f"\r[{self.done + 1}/{self.total}] {self.job_label}: {phase}")
        sys.stderr.flush()

    def job_progress(self, job_id: int, step: int, total: int, preview: object) -> None:
        width = 24
        filled = int(width * step / max(total, 1))
        elapsed = time.perf_counter() - self.started
        eta = elapsed / step * (total - step) if step else 0.0
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(
            f"\r[{self.done + 1}/{self.total}] {self.job_label} [{bar}] {step}/{total} steps, ETA {eta:4.1f}s "
        )
        sys.stderr.flush()

    def job_ended(self, result: JobResult) -> None:
        self.done += 1
        if result.rerolled is not None:
            self.total += 1  # the next seed of its chain, queued first
        placement = result.placement_words()
        checked = f" · {placement}" if placement else ""
        sys.stderr.write(
            f"\r[{self.done}/{self.total}] {self.job_label}: {result.outcome} in {result.seconds:.1f}s"
            f"{checked}{' ' * 40}\n"
        )
        sys.stderr.flush()

    def interrupted(self) -> None:
        sys.stderr.write("\nstopping after this step (Ctrl-C)...\n")
        sys.stderr.flush()
