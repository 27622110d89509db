import dataclasses
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects import queue
from projects.database import Project
from projects.errors import QueueError
from projects.models import Instance, JobStatus, Render
from projects.queue import RenderOutput
from projects.scenes import SceneLayout, add_scene, scene_to_request

OUTPUT = RenderOutput(png=b"\x89PNG...", thumbnail=b"thumb", timings={"sample": 1.5}, model_hashes={"unet": "ab12"})


def request(seed: int = 0) -> RenderRequest:
    return RenderRequest(prompt=f"scene {seed}", seed=seed, width=64, height=64)


def enqueue(project: Project, *seeds: int, priority: int = 0, scene_id: int | None = None) -> list[int]:
    with project.write() as session:
        return [queue.enqueue(session, request(seed), scene_id, priority).id for seed in seeds]


def claim(project: Project) -> queue.JobSnapshot | None:
    with project.write() as session:
        return queue.claim_next(session)


@pytest.fixture
def scene_id(project: Project) -> int:
    with project.write() as session:
        return add_scene(session, SceneLayout("s", "a scene", 64, 64)).id


def test_claim_takes_highest_priority_then_oldest(project: Project) -> None:
    low = enqueue(project, 1, 2)
    high = enqueue(project, 3, 4, priority=5)
    order = [claim(project) for _ in range(4)]
    assert [job.id for job in order if job] == [*high, *low]
    assert all(job is not None and job.status is JobStatus.RUNNING and job.attempts == 1 for job in order)
    assert claim(project) is None


def test_job_keeps_the_request_frozen_at_enqueue(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(
            session,
            SceneLayout("s", "a cat", 512, 512, (InstanceSpec("cat", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),)),
        )
        job = queue.enqueue(session, scene_to_request(session, scene), scene.id)
    with project.write() as session:
        instance = session.scalars(select(Instance)).one()
        instance.caption, instance.geometry = "dog", {"box": [0.5, 0.5, 0.9, 0.9]}
    (snapshot,) = (j for j in _jobs(project) if j.id == job.id)
    assert snapshot.request == job.request
    assert snapshot.request.instances[0].caption == "cat"


def test_finish_stores_the_render_and_marks_done(project: Project, scene_id: int) -> None:
    (job_id,) = enqueue(project, 7, scene_id=scene_id)
    claim(project)
    with project.write() as session:
        queue.report_progress(session, job_id, 3, 10)
        render_id = queue.finish(session, job_id, OUTPUT)
    with project.read() as session:
        render = session.get(Render, render_id)
        assert render is not None
        assert (render.scene_id, render.job_id, render.seed, render.png) == (scene_id, job_id, 7, OUTPUT.png)
        assert render.timings == {"sample": 1.5} and render.model_hashes == {"unet": "ab12"}
        assert RenderRequest.from_json(render.request_json) == request(7)
    (job,) = _jobs(project)
    assert job.status is JobStatus.DONE


@pytest.mark.parametrize("final", ["done", "failed", "cancelled"])
def test_final_states_never_change(project: Project, scene_id: int, final: str) -> None:
    (job_id,) = enqueue(project, 1, scene_id=scene_id)
    claim(project)
    with project.write() as session:
        if final == "done":
            queue.finish(session, job_id, OUTPUT)
        elif final == "failed":
            queue.fail(session, job_id, "out of memory")
        else:
            queue.cancel(session, job_id)
    transitions = [
        lambda s: queue.finish(s, job_id, OUTPUT),
        lambda s: queue.fail(s, job_id, "x"),
        lambda s: queue.cancel(s, job_id),
        lambda s: queue.requeue(s, job_id),
        lambda s: queue.report_progress(s, job_id, 1, 2),
        lambda s: queue.reorder(s, [job_id]),
        lambda s: queue.move_to_front(s, job_id),
    ]
    for transition in transitions:
        with pytest.raises(QueueError, match=f"job {job_id} is {final}"), project.write() as session:
            transition(session)
    (job,) = _jobs(project)
    assert job.status.value == final
    with project.read() as session:
        assert len(session.scalars(select(Render)).all()) == (1 if final == "done" else 0)


def test_a_cancelled_running_job_never_stores_its_image(project: Project, scene_id: int) -> None:
    (job_id,) = enqueue(project, 1, scene_id=scene_id)
    claim(project)
    with project.write() as session:
        queue.cancel(session, job_id)
    with pytest.raises(QueueError), project.write() as session:
        queue.finish(session, job_id, OUTPUT)  # the worker's late result
    with project.read() as session:
        assert session.scalars(select(Render)).all() == []


def test_cancelling_a_pending_job_leaves_the_running_one_alone(project: Project) -> None:
    running_id, pending_id = enqueue(project, 1, 2)
    claim(project)
    with project.write() as session:
        queue.cancel(session, pending_id)
    statuses = {job.id: job.status for job in _jobs(project)}
    assert statuses == {running_id: JobStatus.RUNNING, pending_id: JobStatus.CANCELLED}


def test_requeue_after_a_clean_stop_spends_no_attempt(project: Project) -> None:
    (job_id,) = enqueue(project, 1)
    claim(project)
    with project.write() as session:
        job = queue.requeue(session, job_id)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 0)


def test_cancelling_a_running_job_is_a_request_kept_until_it_ends(project: Project, scene_id: int) -> None:
    running_id, pending_id, done_id = enqueue(project, 1, 2, 3, scene_id=scene_id)
    claim(project)
    with project.write() as session:
        assert queue.request_cancel(session, pending_id).status is JobStatus.CANCELLED  # pending: at once
        requested = queue.request_cancel(session, running_id)
    assert (requested.status, requested.cancel_requested) == (JobStatus.RUNNING, True)
    with project.write() as session:
        assert queue.report_progress(session, running_id, 3, 20)  # the render hears of it at its next write
        # A clean stop (closing the app) before the render noticed: cancelled, not back in the queue.
        assert queue.requeue(session, running_id).status is JobStatus.CANCELLED
    claim(project)
    with project.write() as session:
        assert not queue.report_progress(session, done_id, 1, 20)
        queue.finish(session, done_id, OUTPUT)
        assert queue.request_cancel(session, done_id).status is JobStatus.DONE  # the click came too late


def test_retry_makes_a_new_job_and_keeps_the_failed_one(project: Project) -> None:
    (job_id,) = enqueue(project, 5, priority=2)
    claim(project)
    with project.write() as session:
        queue.fail(session, job_id, "NaN output")
        again = queue.retry(session, job_id)
    assert again.id != job_id and again.request == request(5) and again.priority == 2
    statuses = {job.id: job.status for job in _jobs(project)}
    assert statuses == {job_id: JobStatus.FAILED, again.id: JobStatus.PENDING}


def test_reorder_and_move_to_front(project: Project) -> None:
    a, b, c, d = enqueue(project, 1, 2, 3, 4)
    with project.write() as session:
        queue.reorder(session, [c, a, b])
    assert [job.id for job in _jobs(project)] == [c, a, b, d]
    with project.write() as session:
        queue.move_to_front(session, d)
    assert [job.id for job in _jobs(project)] == [d, c, a, b]
    assert claim(project).id == d  # type: ignore[union-attr]
    with pytest.raises(QueueError, match="twice"), project.write() as session:
        queue.reorder(session, [a, a])


def test_move_one_place_up_or_down_stops_at_the_ends(project: Project) -> None:
    a, b, c = enqueue(project, 1, 2, 3)
    with project.write() as session:
        queue.move(session, c, -1)
    assert [job.id for job in _jobs(project)] == [a, c, b]
    with project.write() as session:
        queue.move(session, a, -1)  # already first
        queue.move(session, a, 1)
    assert [job.id for job in _jobs(project)] == [c, a, b]
    with project.write() as session:
        queue.move(session, b, 1)  # already last
    assert [job.id for job in _jobs(project)] == [c, a, b]
    assert claim(project).id == c  # type: ignore[union-attr]
    with pytest.raises(QueueError), project.write() as session:
        queue.move(session, c, 1)  # running now: not pending


def test_move_to_front_beats_higher_priorities(project: Project) -> None:
    (urgent,) = enqueue(project, 1, priority=9)
    (late,) = enqueue(project, 2)
    with project.write() as session:
        queue.move_to_front(session, late)
    assert claim(project).id == late  # type: ignore[union-attr]
    assert claim(project).id == urgent  # type: ignore[union-attr]


def test_counts_and_clear_finished(project: Project, scene_id: int) -> None:
    a, b, _c = enqueue(project, 1, 2, 3, scene_id=scene_id)
    claim(project)
    claim(project)
    with project.write() as session:
        queue.finish(session, a, OUTPUT)
        queue.fail(session, b, "x")
    with project.read() as session:
        counts = queue.status_counts(session)
    assert counts == {
        JobStatus.PENDING: 1,
        JobStatus.RUNNING: 0,
        JobStatus.DONE: 1,
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 0,
    }
    with project.write() as session:
        assert queue.clear_finished(session) == 2
    assert [job.status for job in _jobs(project)] == [JobStatus.PENDING]
    with project.read() as session:
        assert len(session.scalars(select(Render)).all()) == 1, "clearing jobs keeps their renders"


def test_a_crashed_job_is_retried_once_then_failed(project_path: Path) -> None:
    with Project.create(project_path) as project:
        (job_id,) = enqueue(project, 1)
        claim(project)  # ...and the app dies here
    with Project.open(project_path) as project:
        assert project.report.requeued_jobs == (job_id,) and project.report.had_unclean_exit
        (job,) = _jobs(project)
        assert (job.status, job.attempts) == (JobStatus.PENDING, 1)
        claim(project)  # dies again
    with Project.open(project_path) as project:
        assert project.report.failed_jobs == (job_id,)
        (job,) = _jobs(project)
        assert job.status is JobStatus.FAILED and job.error is not None and "interrupted 2 times" in job.error
    with Project.open(project_path) as project:
        assert not project.report.had_unclean_exit


def test_a_crashed_job_the_user_had_cancelled_ends_cancelled(project_path: Path) -> None:
    with Project.create(project_path) as project:
        job_id, waiting_id = enqueue(project, 1, 2)
        claim(project)
        with project.write() as session:
            queue.request_cancel(session, job_id)  # ...and the app dies before the render notices
    with Project.open(project_path) as project:
        assert project.report.requeued_jobs == () and project.report.failed_jobs == ()
        statuses = {job.id: job.status for job in _jobs(project)}
    assert statuses == {job_id: JobStatus.CANCELLED, waiting_id: JobStatus.PENDING}


def test_concurrent_claims_never_share_a_job(project: Project) -> None:
    enqueue(project, *range(40))
    claimed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while (job := claim(project)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40


def _jobs(project: Project) -> list[queue.JobSnapshot]:
    with project.read() as session:
        return queue.list_jobs(session)


# --- placement checks and re-roll chains -------------------------------------------------------------------

MISSED = {"checker": "shape-world", "instances": [{"found": False, "iou": 0.0, "score": 0.0}]}


def test_until_placed_takes_0_to_100_seeds(project: Project) -> None:
    with project.write() as session:
        for bad in (-1, 101):
            with pytest.raises(QueueError, match=f"until placed takes 1 to 100 seeds, not {bad}"):
                queue.enqueue(session, request(), until_placed=bad)
        edges = [queue.enqueue(session, request(), until_placed=n).until_placed for n in (0, 1, 100)]
    assert edges == [0, 1, 100]
    assert len(_jobs(project)) == 3, "a refused job is not queued"


def test_finish_stores_the_placement_and_the_chain_of_a_render(project: Project, scene_id: int) -> None:
    with project.write() as session:
        chained = queue.enqueue(session, request(1), scene_id, until_placed=3)
        single = queue.enqueue(session, request(2), scene_id)
        for job in (chained, single):
            queue.claim_next(session)
            placement = MISSED if job is chained else None
            queue.finish(session, job.id, RenderOutput(b"png", b"t", {}, {}, placement=placement))
    with project.read() as session:
        stored = {render.job_id: (render.placement, render.reroll_group) for render in session.scalars(select(Render))}
    assert stored == {chained.id: (MISSED, chained.id), single.id: (None, None)}


def _render_and_reroll(project: Project, job_id: int) -> queue.JobSnapshot | None:
    with project.write() as session:
        claimed = queue.claim_next(session)
        assert claimed is not None and claimed.id == job_id
        queue.finish(session, job_id, RenderOutput(b"png", b"t", {}, {}, placement=MISSED))
        return queue.reroll(session, job_id)


def test_reroll_queues_the_next_seed_first_until_the_chain_has_tried_its_seeds(
    project: Project, scene_id: int
) -> None:
    with project.write() as session:
        first = queue.enqueue(session, request(queue.SEED_LIMIT - 2), scene_id, priority=1, until_placed=3)
        other = queue.enqueue(session, request(50), scene_id, priority=1)
    second = _render_and_reroll(project, first.id)
    assert second is not None and second.reroll_of == first.id and second.reroll_group == first.id
    assert second.request.seed == queue.SEED_LIMIT - 1 and second.priority == 1 and second.until_placed == 3
    assert second.request == dataclasses.replace(first.request, seed=second.request.seed)
    assert [job.id for job in _jobs(project) if job.status is JobStatus.PENDING] == [second.id, other.id]
    third = _render_and_reroll(project, second.id)
    assert third is not None and third.request.seed == 0, "seeds wrap around"
    assert _render_and_reroll(project, third.id) is None, "three seeds tried: the chain is spent"
    with project.read() as session:
        stored = [(render.seed, render.reroll_group) for render in session.scalars(select(Render).order_by(Render.id))]
        assert queue.seeds_tried(session, third) == 3
    assert stored == [(queue.SEED_LIMIT - 2, first.id), (queue.SEED_LIMIT - 1, first.id), (0, first.id)]
    assert [job.id for job in _jobs(project) if job.status is JobStatus.PENDING] == [other.id]


def test_a_job_outside_a_chain_never_rerolls(project: Project, scene_id: int) -> None:
    with project.write() as session:
        plain = queue.enqueue(session, request(1), scene_id)
        one_seed = queue.enqueue(session, request(2), scene_id, until_placed=1)
    assert _render_and_reroll(project, plain.id) is None
    assert _render_and_reroll(project, one_seed.id) is None
    assert all(job.status is JobStatus.DONE for job in _jobs(project))
    with pytest.raises(QueueError, match="is pending, not done"), project.write() as session:
        queue.reroll(session, queue.enqueue(session, request(3), scene_id, until_placed=2).id)


def test_retry_keeps_a_failed_reroll_in_its_chain(project: Project, scene_id: int) -> None:
    with project.write() as session:
        first = queue.enqueue(session, request(1), scene_id, until_placed=2)
    second = _render_and_reroll(project, first.id)
    assert second is not None
    with project.write() as session:
        queue.claim_next(session)
        queue.fail(session, second.id, "NaN output")
        again = queue.retry(session, second.id)
    assert (again.reroll_of, again.until_placed, again.request.seed) == (first.id, 2, 2)
    # The retry is the chain's second seed: once it renders, the chain has tried both and stops.
    assert _render_and_reroll(project, again.id) is None
    with project.write() as session:
        failed_first = queue.enqueue(session, request(7), scene_id, until_placed=4)
        queue.claim_next(session)
        queue.fail(session, failed_first.id, "x")
        retried_first = queue.retry(session, failed_first.id)
    assert retried_first.reroll_of is None and retried_first.until_placed == 4
    assert retried_first.reroll_group == retried_first.id, "a retried first job starts its own chain"
