"""Render-queue transitions, as functions over a write session.

States: pending -> running -> done | failed | cancelled; pending -> cancelled. Final states never
change: retrying a failed job makes a new job. Cancelling a running job is a request (`request_cancel`),
stored at once: the render stops at its next check and marks it cancelled, and a job left running by a
crash with the request on it is cancelled at the next open, not queued again. Every function checks the state it starts from and
raises `QueueError` otherwise, so a late message from the worker (finishing a job the user just
cancelled) can never resurrect it.

Functions return `JobSnapshot`s, plain data that may cross threads; ORM rows stay in their session.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.request import RenderRequest
from projects.errors import QueueError
from projects.models import JobStatus, Render, RenderJob, utcnow

# A job is claimed at most this many times; a job that was running when the app died twice fails
# instead of crashing the app at every start.
MAX_ATTEMPTS = 2
MAX_UNTIL_PLACED = 100  # seeds a re-roll chain may try
SEED_LIMIT = 2**31  # seeds wrap around here (the range random seeds are drawn from)


@dataclass(frozen=True)
class JobSnapshot:
    id: int
    scene_id: int | None
    request: RenderRequest
    status: JobStatus
    priority: int
    position: int
    attempts: int
    error: str | None
    progress_step: int
    progress_total: int
    cancel_requested: bool = False
    until_placed: int = 0  # at most this many seeds until every instance is placed (0 or 1: no re-roll)
    reroll_of: int | None = None  # the first job of its re-roll chain

    @property
    def reroll_group(self) -> int | None:
        """The chain this job's render belongs to (the first job's id), or None outside any chain."""
        if self.reroll_of is not None:
            return self.reroll_of
        return self.id if self.until_placed > 1 else None

    @classmethod
    def of(cls, job: RenderJob) -> JobSnapshot:
        return cls(
            id=job.id,
            scene_id=job.scene_id,
            request=RenderRequest.from_json(job.request_json),
            status=JobStatus(job.status),
            priority=job.priority,
            position=job.position,
            attempts=job.attempts,
            error=job.error,
            progress_step=job.progress_step,
            progress_total=job.progress_total,
            cancel_requested=job.cancel_requested,
            until_placed=job.until_placed,
            reroll_of=job.reroll_of,
        )


@dataclass(frozen=True)
class RenderOutput:
    """What a finished render stores: the image, its thumbnail and how it was made."""

    png: bytes
    thumbnail: bytes
    timings: dict[str, Any]
    model_hashes: dict[str, Any]
    device: str = ""
    dtype: str = ""
    # (width, height) of the image as rendered: a model with a scale of its own (the demo model) renders
    # the canvas smaller; None: the request's canvas.
    size: tuple[int, int] | None = None
    # The placement check (engine.placement_report.PlacementReport.to_dict()); None: not checked.
    placement: dict[str, Any] | None = None


def _claim_order() -> tuple[Any, ...]:
    return (RenderJob.priority.desc(), RenderJob.position.asc(), RenderJob.id.asc())


def enqueue(
    session: Session,
    request: RenderRequest,
    scene_id: int | None = None,
    priority: int = 0,
    *,
    until_placed: int = 0,
) -> JobSnapshot:
    """Append a job that renders `request` exactly as it is now. With `until_placed` N > 1, a render whose
    placement check misses an instance queues the next seed (`reroll`), up to N seeds in all."""
    if not 0 <= until_placed <= MAX_UNTIL_PLACED:
        raise QueueError(f"until placed takes 1 to {MAX_UNTIL_PLACED} seeds, not {until_placed}")
    last = session.scalar(select(func.max(RenderJob.position)))
    job = RenderJob(
        scene_id=scene_id,
        request_json=request.to_json(),
        status=JobStatus.PENDING.value,
        priority=priority,
        position=(last or 0) + 1,
        until_placed=until_placed,
    )
    session.add(job)
    session.flush()
    return JobSnapshot.of(job)


def claim_next(session: Session) -> JobSnapshot | None:
    """Mark the next pending job (highest priority, then oldest) running and return it, if any.

    The status guard in the UPDATE makes the claim atomic even if two workers race for one job.
    """
    candidate = session.scalar(
        select(RenderJob.id).where(RenderJob.status == JobStatus.PENDING.value).order_by(*_claim_order()).limit(1)
    )
    if candidate is None:
        return None
    result = session.execute(
        update(RenderJob)
        .where(RenderJob.id == candidate, RenderJob.status == JobStatus.PENDING.value)
        .values(
            status=JobStatus.RUNNING.value,
            attempts=RenderJob.attempts + 1,
            started_at=utcnow(),
            progress_step=0,
            progress_total=0,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return JobSnapshot.of(_load(session, candidate))


def report_progress(session: Session, job_id: int, step: int, total: int) -> bool:
    """Store a running job's progress. Returns whether a cancel was requested for it (by any process)."""
    job = _load_in(session, job_id, {JobStatus.RUNNING})
    job.progress_step, job.progress_total = step, total
    return job.cancel_requested


def finish(session: Session, job_id: int, output: RenderOutput) -> int:
    """Store the render of a running job and mark it done, in the caller's transaction. Returns the render id."""
    job = _load_in(session, job_id, {JobStatus.RUNNING})
    request = RenderRequest.from_json(job.request_json)
    if job.scene_id is None:
        raise QueueError(f"job {job_id} has no scene any more (it was deleted); the render is discarded")
    render = Render(
        scene_id=job.scene_id,
        job_id=job.id,
        png=output.png,
        thumbnail=output.thumbnail,
        request_json=job.request_json,
        seed=request.seed,
        width=output.size[0] if output.size else request.width,
        height=output.size[1] if output.size else request.height,
        timings=dict(output.timings),
        model_hashes=dict(output.model_hashes),
        device=output.device,
        dtype=output.dtype,
        placement=None if output.placement is None else dict(output.placement),
        reroll_group=JobSnapshot.of(job).reroll_group,
    )
    session.add(render)
    job.status = JobStatus.DONE.value
    job.finished_at = utcnow()
    job.progress_step = job.progress_total
    session.flush()
    return render.id


def seeds_tried(session: Session, job: JobSnapshot) -> int:
    """How many jobs of `job`'s re-roll chain have rendered (1 for a job outside any chain that is done)."""
    group = job.reroll_group
    if group is None:
        return 1
    in_chain = (RenderJob.id == group) | (RenderJob.reroll_of == group)
    done = session.scalar(
        select(func.count()).select_from(RenderJob).where(in_chain, RenderJob.status == JobStatus.DONE.value)
    )
    return int(done or 0)


def reroll(session: Session, job_id: int) -> JobSnapshot | None:
    """After a done job's render missed an instance: queue its request with the next seed, at the front of
    its priority (a chain's attempts run one after another), unless the chain has tried its N seeds. Returns
    the new job, or None when the chain is spent (or the job is in none)."""
    job = JobSnapshot.of(_load_in(session, job_id, {JobStatus.DONE}))
    group = job.reroll_group
    if group is None or seeds_tried(session, job) >= job.until_placed:
        return None
    request = dataclasses.replace(job.request, seed=(job.request.seed + 1) % SEED_LIMIT)
    new = RenderJob(
        scene_id=job.scene_id,
        request_json=request.to_json(),
        status=JobStatus.PENDING.value,
        priority=job.priority,
        position=(session.scalar(select(func.min(RenderJob.position))) or 0) - 1,
        until_placed=job.until_placed,
        reroll_of=group,
    )
    session.add(new)
    session.flush()
    return JobSnapshot.of(new)


def fail(session: Session, job_id: int, error: str) -> JobSnapshot:
    job = _load_in(session, job_id, {JobStatus.RUNNING})
    job.status, job.error, job.finished_at = JobStatus.FAILED.value, error, utcnow()
    return JobSnapshot.of(job)


def cancel(session: Session, job_id: int) -> JobSnapshot:
    """Mark a pending or running job cancelled. For a running job this is the render's own last word (it
    stopped); the user's cancel of a running job is `request_cancel`."""
    job = _load_in(session, job_id, {JobStatus.PENDING, JobStatus.RUNNING})
    job.status, job.finished_at = JobStatus.CANCELLED.value, utcnow()
    return JobSnapshot.of(job)


def request_cancel(session: Session, job_id: int) -> JobSnapshot:
    """The user cancels a job: a pending one is cancelled now; a running one is marked, and ends cancelled
    when its render stops (`report_progress` tells the render) or, after a crash, when the project opens.
    A job that ended meanwhile (the click came as it finished) stays as it ended."""
    job = _load(session, job_id)
    status = JobStatus(job.status)
    if status is JobStatus.PENDING:
        return cancel(session, job_id)
    if status is JobStatus.RUNNING:
        job.cancel_requested = True
    return JobSnapshot.of(job)


def requeue(session: Session, job_id: int) -> JobSnapshot:
    """Put a running job back to pending after a clean stop (closing the app); no attempt is spent. A job
    the user asked to cancel is cancelled instead."""
    job = _load_in(session, job_id, {JobStatus.RUNNING})
    if job.cancel_requested:
        return cancel(session, job_id)
    job.status = JobStatus.PENDING.value
    job.attempts = max(0, job.attempts - 1)
    job.started_at = None
    job.progress_step = job.progress_total = 0
    return JobSnapshot.of(job)


def retry(session: Session, job_id: int) -> JobSnapshot:
    """Queue a new job with the same frozen request as a failed or cancelled one (in the same re-roll chain)."""
    job = _load_in(session, job_id, {JobStatus.FAILED, JobStatus.CANCELLED})
    new = enqueue(
        session, RenderRequest.from_json(job.request_json), job.scene_id, job.priority, until_placed=job.until_placed
    )
    if job.reroll_of is None:
        return new
    row = _load(session, new.id)
    row.reroll_of = job.reroll_of
    return JobSnapshot.of(row)


def retry_failed(session: Session, scene_ids: Sequence[int] | None = None) -> list[JobSnapshot]:
    """Retry every failed job (of these scenes, or all), in queue order, and drop the failed ones: their
    retries take their place, so retrying again never queues the same render twice. Returns the new jobs."""
    query = select(RenderJob).where(RenderJob.status == JobStatus.FAILED.value).order_by(*_claim_order())
    if scene_ids is not None:
        query = query.where(RenderJob.scene_id.in_(scene_ids))
    retried = []
    for job in session.scalars(query).all():
        retried.append(retry(session, job.id))
        session.delete(job)
    return retried


def reorder(session: Session, job_ids: Sequence[int]) -> None:
    """Give the listed pending jobs this relative order, reusing the positions they hold."""
    if len(set(job_ids)) != len(job_ids):
        raise QueueError("a job is listed twice in the new order")
    jobs = [_load_in(session, job_id, {JobStatus.PENDING}) for job_id in job_ids]
    for job, position in zip(jobs, sorted(job.position for job in jobs), strict=True):
        job.position = position


def move(session: Session, job_id: int, delta: int) -> None:
    """Move a pending job `delta` places towards the front (negative) or the back of the pending jobs, in
    the order they will be claimed; at either end it stays where it is."""
    _load_in(session, job_id, {JobStatus.PENDING})
    order = list(
        session.scalars(
            select(RenderJob.id).where(RenderJob.status == JobStatus.PENDING.value).order_by(*_claim_order())
        )
    )
    index = order.index(job_id)
    target = index + delta
    if 0 <= target < len(order):
        order[index], order[target] = order[target], order[index]
        reorder(session, order)


def move_to_front(session: Session, job_id: int) -> None:
    """Make a pending job the next one claimed."""
    job = _load_in(session, job_id, {JobStatus.PENDING})
    pending = RenderJob.status == JobStatus.PENDING.value
    top_priority = session.scalar(select(func.max(RenderJob.priority)).where(pending)) or 0
    first = session.scalar(select(func.min(RenderJob.position)).where(pending)) or 0
    job.priority = max(job.priority, top_priority)
    job.position = first - 1


def clear_finished(session: Session) -> int:
    """Delete done, failed and cancelled jobs (their renders stay). Returns how many went."""
    finals = [s.value for s in JobStatus if s.is_final]
    jobs = session.scalars(select(RenderJob).where(RenderJob.status.in_(finals))).all()
    for job in jobs:
        session.delete(job)
    return len(jobs)


def list_jobs(session: Session) -> list[JobSnapshot]:
    """Every job in queue order: the running ones, then pending in claim order, then finished."""
    rank = {JobStatus.RUNNING: 0, JobStatus.PENDING: 1}
    jobs = [JobSnapshot.of(job) for job in session.scalars(select(RenderJob).order_by(*_claim_order()))]
    return sorted(jobs, key=lambda job: rank.get(job.status, 2))


def status_counts(session: Session) -> dict[JobStatus, int]:
    rows = session.execute(select(RenderJob.status, func.count()).group_by(RenderJob.status)).all()
    counts = dict.fromkeys(JobStatus, 0)
    for status, count in rows:
        counts[JobStatus(status)] = count
    return counts


def recover_interrupted_jobs(session: Session) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """At open: jobs still `running` were interrupted by a crash. Requeue each once, then fail it; one the
    user had asked to cancel is cancelled.

    Returns the ids requeued and the ids failed. `Project.open` calls this in a write session before
    anyone else can claim a job; this module knows nothing of opening (import-linter keeps it so).
    """
    requeued: list[int] = []
    failed: list[int] = []
    for job in session.scalars(select(RenderJob).where(RenderJob.status == JobStatus.RUNNING.value)):
        job.progress_step = job.progress_total = 0
        if job.cancel_requested:
            job.status, job.finished_at = JobStatus.CANCELLED.value, utcnow()
        elif job.attempts < MAX_ATTEMPTS:
            job.status, job.started_at = JobStatus.PENDING.value, None
            requeued.append(job.id)
        else:
            job.status, job.finished_at = JobStatus.FAILED.value, utcnow()
            job.error = (
                f"interrupted {job.attempts} times: the app stopped while rendering it; "
                "retry it if that was not caused by this job"
            )
            failed.append(job.id)
    return tuple(requeued), tuple(failed)


def _load(session: Session, job_id: int) -> RenderJob:
    job = session.get(RenderJob, job_id, populate_existing=True)
    if job is None:
        raise QueueError(f"there is no job {job_id}")
    return job


def _load_in(session: Session, job_id: int, allowed: set[JobStatus]) -> RenderJob:
    job = _load(session, job_id)
    status = JobStatus(job.status)
    if status not in allowed:
        wanted = " or ".join(sorted(s.value for s in allowed))
        raise QueueError(f"job {job_id} is {status.value}, not {wanted}")
    return job
