"""The cluster render's console: each finished job's line says its placement as a local render's does."""

from __future__ import annotations

import dataclasses
import io

from cli.cluster_render import ClusterConsole
from cli.render import placement_summary
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects.models import JobStatus
from projects.queue import JobSnapshot
from rendering.outcomes import JobResult, Outcome

REQUEST = RenderRequest(
    prompt="a red circle", instances=(InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),)
)


def job(job_id: int, seed: int, until_placed: int = 0) -> JobSnapshot:
    return JobSnapshot(
        id=job_id,
        scene_id=1,
        request=dataclasses.replace(REQUEST, seed=seed),
        status=JobStatus.DONE,
        priority=0,
        position=job_id,
        attempts=1,
        error=None,
        progress_step=0,
        progress_total=0,
        until_placed=until_placed,
    )


def test_a_job_line_names_the_placement_and_the_queued_reroll() -> None:
    stream = io.StringIO()  # not a terminal: one line per finished job
    console = ClusterConsole(2, stream)
    console.workers_ready([])
    missed = JobResult(
        job(1, seed=7, until_placed=3), Outcome.DONE, 1.5, placement_summary="1 of 1 missed", rerolled=job(2, seed=8)
    )
    placed = JobResult(job(2, seed=8, until_placed=3), Outcome.DONE, 1.2, placement_summary="all placed")
    console.lines = ["idle"]
    console.job_ended(missed, 0)
    console.job_ended(placed, 0)
    lines = stream.getvalue().splitlines()
    assert lines[-2].endswith("1 of 1 missed -> seed 8 queued") and "[1/3]" in lines[-2]
    assert lines[-1].endswith("all placed") and "[2/3]" in lines[-1]
    assert placement_summary([missed, placed]) == "placement: 1 of 1 scene(s) fully placed, 2.0 render(s) per scene"
