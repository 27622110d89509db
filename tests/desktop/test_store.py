"""The store: every database call on its own thread, answers as plain data, nothing lost."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pytestqt.qtbot import QtBot

from desktop.store import ProjectStore, problems_in_words
from engine.request import MAX_GUIDANCE, InstanceKind, InstanceSpec, RenderRequest, RequestValidationError
from projects.database import Project
from projects.queue import RenderOutput, claim_next, enqueue, finish, list_jobs
from projects.scene_data import ProjectSnapshot, SceneData, SceneState, SceneSummary
from projects.scenes import find_scene, scene_to_request
from tests.desktop.conftest import make_project


def opened(qtbot: QtBot, path: Path) -> tuple[ProjectStore, ProjectSnapshot]:
    store = ProjectStore()
    with qtbot.waitSignal(store.opened, timeout=10_000) as blocker:
        store.open(path)
    return store, blocker.args[0]


def load(qtbot: QtBot, store: ProjectStore, scene_id: int) -> SceneData:
    with qtbot.waitSignal(store.sceneLoaded, timeout=10_000) as blocker:
        store.load_scene(scene_id)
    scene: SceneData = blocker.args[0]
    return scene


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_open_gives_the_scene_list(qtbot: QtBot, tmp_path: Path) -> None:
    store, snapshot = opened(qtbot, make_project(tmp_path / "p.instproj", scenes=3, instances=2))
    try:
        assert [s.name for s in snapshot.scenes] == ["scene 1", "scene 2", "scene 3"]
        assert all(s.instance_count == 2 and s.state is SceneState.NEVER_RENDERED for s in snapshot.scenes)
        assert snapshot.defaults.steps == 50 and not snapshot.unclean_exit
    finally:
        store.close()


def test_a_file_that_is_not_a_project_fails_to_open_with_a_reason(qtbot: QtBot, tmp_path: Path) -> None:
    bad = tmp_path / "bad.instproj"
    bad.write_text("{ not sqlite")
    store = ProjectStore()
    with qtbot.waitSignal(store.openFailed, timeout=10_000) as blocker:
        store.open(bad)
    assert "bad.instproj" in blocker.args[0] or "not" in blocker.args[0]
    store.close()


def test_saves_coalesce_and_the_latest_state_wins(qtbot: QtBot, tmp_path: Path) -> None:
    path = make_project(tmp_path / "p.instproj")
    store, snapshot = opened(qtbot, path)
    scene_id = snapshot.scenes[0].scene_id
    scene = load(qtbot, store, scene_id)
    saves: list[int] = []
    store.saved.connect(saves.append)
    for k in range(50):
        store.save_scene(dataclasses.replace(scene, caption=f"caption {k}"))
    assert store.flush()
    qtbot.waitUntil(lambda: len(saves) >= 1)
    assert len(saves) < 50  # a burst of edits is a few transactions, not fifty
    store.close()
    with Project.open(path) as project, project.read() as session:
        assert find_scene(session, scene_id).caption == "caption 49"


def test_instances_are_written_in_slot_order_with_lock_and_colour(qtbot: QtBot, tmp_path: Path) -> None:
    path = make_project(tmp_path / "p.instproj", instances=3)
    store, snapshot = opened(qtbot, path)
    scene = load(qtbot, store, snapshot.scenes[0].scene_id)
    reordered = (dataclasses.replace(scene.instances[2], locked=True, color="#123456"), *scene.instances[:2])
    store.save_scene(dataclasses.replace(scene, instances=reordered))
    store.close()
    again, _ = opened(qtbot, path)
    loaded = load(qtbot, again, scene.scene_id)
    again.close()
    assert [i.caption for i in loaded.instances] == ["thing 2", "thing 0", "thing 1"]
    assert loaded.instances[0].locked and loaded.instances[0].color == "#123456"


def test_add_duplicate_reorder_and_delete_scenes(qtbot: QtBot, tmp_path: Path) -> None:
    store, snapshot = opened(qtbot, make_project(tmp_path / "p.instproj", scenes=2))
    lists: list[tuple[SceneSummary, ...]] = []
    store.scenesChanged.connect(lists.append)
    first, second = (s.scene_id for s in snapshot.scenes)
    with qtbot.waitSignal(store.sceneAdded, timeout=10_000):
        store.duplicate_scene(first)
    names = [s.name for s in lists[-1]]
    assert names == ["scene 1", "scene 1 copy", "scene 2"]
    copy_id = lists[-1][1].scene_id
    assert [i.caption for i in load(qtbot, store, copy_id).instances] == ["thing 0"]
    with qtbot.waitSignal(store.sceneAdded, timeout=10_000):
        store.add_scene("fresh", 768, 512)
    store.reorder_scenes([second, copy_id, first])
    store.delete_scene(copy_id)
    assert store.flush()
    qtbot.waitUntil(lambda: [s.name for s in lists[-1]] == ["scene 2", "scene 1", "fresh"])
    store.close()


def test_scene_states_follow_the_queue_and_the_last_render(qtbot: QtBot, tmp_path: Path) -> None:
    path = make_project(tmp_path / "p.instproj", scenes=1)
    with Project.open(path) as project, project.write() as session:
        scene = find_scene(session, "scene 1")
        request = scene_to_request(session, scene)
        enqueue(session, request, scene.id)
        scene_id = scene.id

    store, snapshot = opened(qtbot, path)
    assert snapshot.scenes[0].state is SceneState.QUEUED

    def state() -> SceneState:
        with qtbot.waitSignal(store.scenesChanged, timeout=10_000) as blocker:
            store.refresh_summaries()
        summary: SceneSummary = blocker.args[0][0]
        return summary.state

    assert store.project is not None
    with store.project.write() as session:  # the render worker's part, on this thread
        job = claim_next(session)
        assert job is not None
    assert state() is SceneState.RENDERING
    with store.project.write() as session:
        finish(session, job.id, RenderOutput(png(), png(), {}, {}))
    assert state() is SceneState.RENDERED

    scene_data = load(qtbot, store, scene_id)
    changes: list[Any] = []
    store.summaryChanged.connect(changes.append)
    moved = dataclasses.replace(
        scene_data.instances[0],
        spec=InstanceSpec(caption="thing 0", kind=InstanceKind.BOX, box=(0.5, 0.5, 0.9, 0.9)),
    )
    store.save_scene(dataclasses.replace(scene_data, instances=(moved,)))
    qtbot.waitUntil(lambda: bool(changes))
    assert changes[-1].state is SceneState.CHANGED and changes[-1].thumbnail == png()
    with qtbot.waitSignal(store.renderLoaded, timeout=10_000) as blocker:
        store.load_render(scene_id)
    assert blocker.args == [scene_id, png()]
    store.close()


def test_a_scene_that_cannot_render_is_refused_in_words_and_its_edit_is_still_saved(
    qtbot: QtBot, tmp_path: Path
) -> None:
    path = make_project(tmp_path / "p.instproj", scenes=1, instances=3)
    store, snapshot = opened(qtbot, path)
    scene_id = snapshot.scenes[0].scene_id
    scene = load(qtbot, store, scene_id)
    third = scene.instances[2]
    uncaptioned = dataclasses.replace(third, spec=dataclasses.replace(third.spec, caption=""))
    failures: list[str] = []
    saves: list[int] = []
    queued: list[int] = []
    store.failed.connect(failures.append)
    store.saved.connect(saves.append)
    store.jobsQueued.connect(queued.append)
    store.save_scene(dataclasses.replace(scene, instances=(*scene.instances[:2], uncaptioned)))
    with qtbot.waitSignal(store.queueRefused, timeout=10_000) as refused:
        store.queue_scenes([scene_id], variations=3)
    assert refused.args == [scene_id, ["instance 3 has no caption"]]
    with qtbot.waitSignal(store.queueRefused, timeout=10_000) as refused:
        store.queue_sweep(scene_id, [1, 2], [0.5], [0.3])
    assert refused.args == [scene_id, ["instance 3 has no caption"]]
    assert store.flush()
    qtbot.wait(20)
    assert failures == [] and queued == [] and saves == [scene_id]  # saved, refused, nothing queued
    store.close()
    with Project.open(path) as project, project.read() as session:
        assert list_jobs(session) == []
        assert [i.caption for i in find_scene(session, scene_id).instances] == ["thing 0", "thing 1", ""]


def test_problems_in_words_name_instances_as_the_user_counts_them() -> None:
    specs = (
        InstanceSpec("", InstanceKind.BOX, box=(0.1, 0.1, 0.2, 0.2)),
        InstanceSpec("a cat", InstanceKind.BOX, box=(0.5, 0.1, 0.5, 0.2)),
        InstanceSpec(" ", InstanceKind.POINT),
    )
    with pytest.raises(RequestValidationError) as refused:
        RenderRequest("a scene", guidance=-1.0, instances=specs)
    assert problems_in_words(refused.value.problems) == [
        "instances 1 and 3 have no caption",
        f"guidance: -1.0 is not a number between 0 and {MAX_GUIDANCE:g}",  # not an instance's: as it is
        "instance 2 ('a cat'): the box has no area (x0=0.5, y0=0.1, x1=0.5, y1=0.2)",
        "instance 3: a point instance needs a point",
    ]
