"""The one write that ends a rendered job, shared by every render path (the local queue loop and the
cluster driver), so a render stored from either is the same: the PNG with its metadata, the thumbnail, the
job done. Also the patience with a project file another program holds. Imports no torch. The PNG, the
thumbnail and the placement check are made before (`rendering.placement_check.checked_output`): by the
local loop, or on a cluster by the worker that rendered it, so the driver's write stays short."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from projects.errors import ProjectBusyError, QueueError
from projects.queue import JobSnapshot, RenderOutput, fail, finish
from rendering.outcomes import JobResult, Outcome
from rendering.placement_check import judge_and_reroll

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BACKOFF_S = 5.0


def store_finished(
    session: Session,
    job: JobSnapshot,
    output: RenderOutput,
    elapsed: Callable[[], float],
    *,
    notes: tuple[str, ...],
    reused_instances: tuple[int, ...],
) -> JobResult:
    """Store a finished render of the running `job` and mark it done, in the caller's write; a job whose
    scene was deleted meanwhile fails instead (the render is discarded). A render that missed an instance
    queues the next seed of its re-roll chain in the same write. `notes` and `reused_instances` (the
    engine's, and the check's note) are passed on in the job's result."""
    try:
        render_id = finish(session, job.id, output)
    except QueueError as exc:
        fail(session, job.id, str(exc))
        return JobResult(job, Outcome.FAILED, elapsed(), error=str(exc))
    placed = judge_and_reroll(session, job, output.placement)
    return JobResult(
        job,
        Outcome.DONE,
        elapsed(),
        render_id=render_id,
        notes=notes,
        reused_instances=reused_instances,
        placement=placed.report,
        placement_summary=placed.summary,
        rerolled=placed.rerolled,
    )


def patiently(attempt: Callable[[], T], patience_s: float) -> T:
    """Run `attempt` (a write), again while another program holds the project's write lock, with a
    growing pause between tries, for up to `patience_s`; then ProjectBusyError goes up."""
    deadline = time.monotonic() + patience_s
    pause = 0.1
    while True:
        try:
            return attempt()
        except ProjectBusyError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.info("%s; trying again in %.1f s", exc, min(pause, left))
            time.sleep(min(pause, left))  # the last try comes at the deadline
            pause = min(2 * pause, MAX_BACKOFF_S)
