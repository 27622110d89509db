"""Rendering a queue on Ray, measured on this machine: jobs per minute rendered locally (rendering.queue_loop),
by 1 Ray worker and by 2 Ray workers (rendering.cluster on a local Ray), side by side, and what going through
Ray costs per job: dispatch and transfer (the round trip minus the worker's own time), the worker's
placement check and PNG encoding (done where it rendered), and the driver's store (model hashes compared and
the write: one writer for the whole cluster, so its rate is the cluster's ceiling). Then the same driver
write, and the encoding a worker does, for a 512x512 render (`--side`; a noise image, the largest PNG
of that size, so an upper bound), as a real model at 512 gives: what the README's estimate at 8 and 64
GPUs rests on.

    .venv/bin/python benchmarks/cluster.py [--model resources/demo/model] [--jobs 24] [--steps 20] [--cpus 2]

Needs the cluster extra (Ray). Each path first renders one warm-up job per worker (the model loads), then
the timed queue. CPU workers share the `--cpus` cores (torch threads = cpus / workers); the local loop runs
with all of them and with one thread. On a shared machine the figures move with the other load: run it under `nice` and say so.
"""

# ruff: noqa: E402  (the offline switch comes before the libraries are imported)

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.offline import enforce_offline

enforce_offline()


def make_project(path: Path, jobs: int, steps: int) -> Path:
    """A project with `jobs` pending renders of one 2-instance shape scene, each with its own seed."""
    from engine.request import InstanceKind, InstanceSpec
    from projects.database import Project
    from projects.scenes import SceneLayout, add_scene, queue_scene

    circle = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    square = InstanceSpec(caption="a blue square", kind=InstanceKind.BOX, box=(0.5, 0.5, 0.9, 0.9))
    layout = SceneLayout("bench", "shapes on a white background", 64, 64, (circle, square), overrides={"steps": steps})
    with Project.create(path) as project, project.write() as session:
        scene = add_scene(session, layout)
        for seed in range(jobs):
            queue_scene(session, scene, seed=seed)
    return path


class Quiet:
    """A listener for both paths that says nothing."""

    def workers_ready(self, workers: Any) -> None: ...

    def job_started(self, *args: Any) -> None: ...

    def job_progress(self, *args: Any) -> None: ...

    def job_ended(self, *args: Any) -> None: ...


def local(model: Path, folder: Path, jobs: int, steps: int, threads: int) -> float:
    """Seconds for `jobs` renders by the local queue loop with `threads` torch threads, the model loaded
    beforehand."""
    import torch

    from engine.providers import load_demo_model
    from engine.runner import Runner
    from projects.database import Project
    from rendering.queue_loop import QueueLoop

    torch.set_num_threads(threads)
    runner = Runner(lambda _id: load_demo_model(model))
    with Project.open(make_project(folder / f"warm{threads}.instproj", 1, steps)) as project:
        QueueLoop(project, runner, Quiet()).run_until_empty()
    with Project.open(make_project(folder / f"local{threads}.instproj", jobs, steps)) as project:
        start = time.perf_counter()
        results = QueueLoop(project, runner, Quiet()).run_until_empty()
        seconds = time.perf_counter() - start
    assert len(results) == jobs and all(r.outcome == "done" for r in results)
    return seconds


def on_ray(model: Path, folder: Path, jobs: int, steps: int, workers: int, cpus: int) -> tuple[float, int, Any]:
    """Seconds for the renders of `workers` Ray workers once warm (each renders a first job), how many jobs
    that timed, and the driver."""
    from projects.database import Project
    from rendering.cluster import ClusterDriver, plan_workers

    plan = plan_workers({"CPU": float(cpus)}, workers=workers)
    path = make_project(folder / f"ray{workers}.instproj", jobs + workers, steps)
    with Project.open(path) as project, ClusterDriver(project, Quiet(), plan, demo_dir=model) as driver:
        driver.start_workers()
        first = _run_some(driver, workers)  # each worker loads the model with its first job
        start = time.perf_counter()
        results = driver.run()
        seconds = time.perf_counter() - start
    assert len(first) >= workers and all(r.outcome == "done" for r in results)
    return seconds, len(results), driver


def _run_some(driver: Any, count: int) -> list[Any]:
    """Run the driver until `count` jobs have ended (the warm-up), then let it be resumed."""
    ended: list[Any] = []

    class Counter(Quiet):
        def job_ended(self, result: Any, worker: int) -> None:
            ended.append(result)
            if len(ended) >= count:
                driver.stop()

    quiet, driver.listener = driver.listener, Counter()
    results = driver.run()
    driver.listener = quiet
    driver.resume()
    driver.overheads_s.clear()
    driver.store_s.clear()
    return [r for r in results if r.outcome == "done"]


def big_writes(folder: Path, count: int, side: int) -> tuple[list[float], list[float], list[float]]:
    """Seconds to claim (the driver's first write), encode (a worker's share) and store (the driver's
    second write) each of `count` renders of a `side` x `side` noise image, as the driver does."""
    import numpy as np

    from engine.runner import RenderResult
    from projects.database import Project
    from projects.placement import placement_thresholds
    from projects.queue import claim_next
    from rendering.output import render_output
    from rendering.store import store_finished

    rng = np.random.default_rng(0)
    claim_s: list[float] = []
    encode_s: list[float] = []
    write_s: list[float] = []
    with Project.open(make_project(folder / f"big{side}.instproj", count, 1)) as project:
        for _ in range(count):
            start = time.perf_counter()
            with project.write() as session:
                job = claim_next(session)
                placement_thresholds(session)  # as the driver reads them with each claim
            claim_s.append(time.perf_counter() - start)
            assert job is not None
            image = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            start = time.perf_counter()
            output = render_output(
                RenderResult(image, job.request, {"total": 2.5}, {"unet": "0" * 64}, "cuda", "fp16")
            )
            encode_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            with project.write() as session:
                store_finished(session, job, output, lambda: 0.0, notes=(), reused_instances=())
            write_s.append(time.perf_counter() - start)
    return claim_s, encode_s, write_s


def _ms(seconds: list[float]) -> str:
    values = [1000 * s for s in seconds]
    return f"median {statistics.median(values):.1f} ms, max {max(values):.1f} ms"


def main(argv: list[str] | None = None) -> int:
    from rendering.demo_model import demo_model_dir

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=demo_model_dir(), help="a demo model folder")
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the local Ray gets (this machine's cores)")
    parser.add_argument("--side", type=int, default=512, help="the image side of the driver-write measurement")
    args = parser.parse_args(argv)
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rows: list[tuple[str, float, int, Any]] = [
                (
                    f"local, {threads} thread(s)",
                    local(args.model, folder, args.jobs, args.steps, threads),
                    args.jobs,
                    None,
                )
                for threads in sorted({args.cpus, 1})
            ]
            for workers in (1, 2):
                seconds, timed, driver = on_ray(args.model, folder, args.jobs, args.steps, workers, args.cpus)
                rows.append((f"Ray, {workers} worker(s)", seconds, timed, driver))
            big_claim, big_encode, big_write = big_writes(folder, args.jobs, args.side)
    finally:
        ray.shutdown()
    print(f"{args.jobs} jobs of a 2-instance 64x64 demo scene, {args.steps} steps, {args.cpus} CPUs\n")
    print(f"{'path':<22} {'jobs':>5} {'seconds':>8} {'jobs/min':>9} {'s/job':>7}")
    for name, seconds, timed, _driver in rows:
        print(f"{name:<22} {timed:5d} {seconds:8.2f} {60 * timed / seconds:9.1f} {seconds / timed:7.3f}")
    for name, _seconds, _timed, driver in rows:
        if driver is None:
            continue
        print(
            f"{name}: per job, Ray (dispatch + transfer) {_ms(driver.overheads_s)}; on the worker, check + "
            f"encode {_ms(driver.finish_s)}; on the driver, store (hashes + write) {_ms(driver.store_s)}"
        )
    print(
        f"a {args.side}x{args.side} render ({args.jobs} of them): encode (on the worker) {_ms(big_encode)}; "
        f"the driver's writes: claim {_ms(big_claim)}, store {_ms(big_write)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
