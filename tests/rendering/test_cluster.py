"""The queue on a Ray cluster (rendering.cluster), on a real local Ray with 2 CPUs and the demo model: stop and
resume, a worker killed mid-job, images equal to local renders, the project intact; and the app without Ray."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from PIL import Image
from sqlalchemy import select

from engine.placement_report import PlacementThresholds
from engine.providers import load_demo_model
from engine.runner import Runner
from projects.database import Project
from projects.models import JobStatus, Render
from projects.queue import JobSnapshot, list_jobs
from projects.scenes import find_scene, queue_scene
from rendering.cluster import ClusterDriver, ClusterError, WorkerPlan, plan_workers
from rendering.cluster_actor import RemoteRender, RenderWorker, WorkerInfo
from rendering.outcomes import JobResult, Outcome
from rendering.queue_loop import QueueLoop
from tests.cli.test_render import shapes_project
from tests.conftest import REPO_ROOT

SCENES, SEEDS = 3, 4  # 12 jobs


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def twelve_jobs(path: Path) -> Path:
    """3 scenes x 4 seeds, 2 steps each, queued in the same order in every project made by it."""
    shapes_project(path, scenes=SCENES, steps=2)
    with Project.open(path) as project, project.write() as session:
        for k in range(SCENES):
            for seed in range(SEEDS):
                queue_scene(session, find_scene(session, f"s{k}"), seed=seed)
    return path


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def renders_by_job(path: Path) -> dict[int, list[Render]]:
    with Project.open(path) as project, project.read() as session:
        by_job: dict[int, list[Render]] = {}
        for render in session.scalars(select(Render)):
            session.expunge(render)
            by_job.setdefault(render.job_id or -1, []).append(render)
    return by_job


class Watcher:
    """The driver's listener: records events, and can act on a job's start (stop the driver, kill a worker)."""

    def __init__(self) -> None:
        self.started: list[tuple[int, int]] = []
        self.ended: list[tuple[JobResult, int]] = []
        self.progress: set[int] = set()
        self.on_start: Callable[[JobSnapshot, int], None] = lambda job, worker: None

    def workers_ready(self, workers: Sequence[WorkerInfo]) -> None:
        self.workers = list(workers)

    def job_started(self, job: JobSnapshot, worker: int) -> None:
        self.started.append((job.id, worker))
        self.on_start(job, worker)

    def job_progress(self, job_id: int, worker: int, step: int, total: int) -> None:
        self.progress.add(job_id)

    def job_ended(self, result: JobResult, worker: int) -> None:
        self.ended.append((result, worker))


class Quiet:
    """The local loop's listener."""

    def job_started(self, job: JobSnapshot) -> None: ...

    def job_progress(self, job_id: int, step: int, total: int, preview: object) -> None: ...

    def job_ended(self, result: JobResult) -> None: ...


def test_the_queue_drains_across_workers_one_killed_mid_job_and_matches_local_renders(
    local_ray: None, tmp_path: Path, untrained_demo_model: Path
) -> None:
    path = twelve_jobs(tmp_path / "cluster.instproj")
    watcher = Watcher()
    with Project.open(path) as project:
        driver = ClusterDriver(project, watcher, WorkerPlan(2, threads=1), demo_dir=untrained_demo_model)
        with driver:
            infos = driver.start_workers()
            assert len(infos) == 2 and {info.threads for info in infos} == {1}  # 2 CPUs shared, not fought over
            # Stopped as soon as the first job is out (Ctrl-C): it goes back to pending, nothing is stored.
            watcher.on_start = lambda job, worker: driver.stop()
            stopped = driver.run()
            assert stopped and {r.outcome for r in stopped} == {Outcome.REQUEUED}
            with project.read() as session:
                jobs = list_jobs(session)
            assert {job.status for job in jobs} == {JobStatus.PENDING} and {job.attempts for job in jobs} == {0}

            # Resumed; the first worker is killed while rendering its first job: another worker renders it.
            killed: list[int] = []

            def kill_first_workers_job(job: JobSnapshot, worker: int) -> None:
                if worker == 0 and not killed:
                    killed.append(job.id)
                    ray.kill(driver.workers[0].handle)

            watcher.on_start = kill_first_workers_job
            driver.resume()
            results = driver.run()
        lost = [r for r in results if r.outcome is Outcome.REQUEUED]
        assert [r.job.id for r in lost] == killed and "lost" in (lost[0].error or "")
        assert sorted(r.job.id for r in results if r.outcome is Outcome.DONE) == sorted(job.id for job in jobs)
        assert {worker for (job_id, worker) in watcher.started if job_id == killed[0]} == {0, 1}
        assert driver.overheads_s and not driver.lost_all_workers
        with project.read() as session:
            assert {job.status for job in list_jobs(session)} == {JobStatus.DONE}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    on_cluster = renders_by_job(path)
    assert sorted(on_cluster) == sorted(job.id for job in jobs)
    assert all(len(renders) == 1 for renders in on_cluster.values())  # rendered exactly once each

    # The same requests rendered locally, with the workers' thread count: the same pictures, the same files.
    local_path = twelve_jobs(tmp_path / "local.instproj")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with Project.open(local_path) as project:
            runner = Runner(lambda _id: load_demo_model(untrained_demo_model))
            assert all(r.outcome is Outcome.DONE for r in QueueLoop(project, runner, Quiet()).run_until_empty())
    finally:
        torch.set_num_threads(threads)
    local = renders_by_job(local_path)
    assert sorted(local) == sorted(on_cluster)
    for job_id, (render,) in on_cluster.items():
        (reference,) = local[job_id]
        assert render.request_json == reference.request_json
        assert np.array_equal(pixels(render.png), pixels(reference.png)), f"job {job_id}"
        assert render.png == reference.png and render.thumbnail == reference.thumbnail
        assert render.placement is not None  # the demo model's check ran, on the worker
        assert (render.device, render.dtype, render.placement) == (
            reference.device,
            reference.dtype,
            reference.placement,
        )


def test_a_worker_checks_with_its_own_nodes_settings_and_a_failed_check_keeps_the_render(
    tmp_path: Path, untrained_demo_model: Path
) -> None:
    """The worker (called directly, without Ray) returns the encoded PNG; its node's models.json, read again
    for each check, turned unreadable after it started: the render comes back unchecked, saying why."""
    settings = tmp_path / "models.json"
    worker = RenderWorker(str(settings), str(untrained_demo_model))  # threads: left as they are
    settings.write_text("{not json")
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=1)
    with Project.open(path) as project, project.write() as session:
        job = queue_scene(session, find_scene(session, "s0"), seed=0)
    reply = worker.render(job.id, job.request.to_json(), PlacementThresholds())
    assert isinstance(reply, RemoteRender), reply
    assert reply.output.placement is None and reply.notes[-1].startswith("placement not checked")
    assert reply.output.timings["notes"] == list(reply.notes)  # kept with the render too, as locally
    assert pixels(reply.output.png).shape == (64, 64, 3) and 0 < reply.finish_seconds < reply.worker_seconds


def test_workers_are_planned_per_gpu_else_sharing_the_cpus() -> None:
    assert plan_workers({"CPU": 64.0, "GPU": 8.0}, nodes=2) == WorkerPlan(8, gpus_each=1.0)
    assert plan_workers({"CPU": 64.0, "GPU": 8.0}, nodes=2, workers=3) == WorkerPlan(3, gpus_each=1.0)
    assert plan_workers({"CPU": 2.0}) == WorkerPlan(1, threads=2)
    assert plan_workers({"CPU": 2.0}, workers=2) == WorkerPlan(2, threads=1)
    assert plan_workers({"CPU": 32.0}, nodes=4) == WorkerPlan(4, threads=8)
    with pytest.raises(ClusterError, match="at least one worker"):
        plan_workers({"CPU": 2.0}, workers=0)


def test_without_ray_the_cluster_option_says_how_to_install_it_and_queues_nothing(tmp_path: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1)
    blocked = (
        "import sys; sys.modules['ray'] = None; import main; "
        f"sys.exit(main.main(['render', {str(path)!r}, '--all', '--cluster', 'auto']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked], cwd=REPO_ROOT, capture_output=True, text=True, env=os.environ, timeout=120
    )
    assert done.returncode == 1, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    assert "needs Ray" in line and "pip install 'instance-studio[cluster]'" in line
    with Project.open(path) as project, project.read() as session:
        assert list_jobs(session) == []
