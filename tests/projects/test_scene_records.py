"""Scenes read into the editor's plain shape and written back: exact round trips, damaged settings that
still open, copies in place."""

from __future__ import annotations

import dataclasses

from engine.request import InstanceKind, InstanceSpec, MaskRLE, Scheduler
from projects.database import Project
from projects.models import Scene
from projects.scene_data import InstanceData
from projects.scene_records import copy_scene, get_scene, read_scene, scene_summaries, write_scene
from projects.scene_settings import SceneSettings
from projects.scenes import SceneLayout, add_scene, list_scenes, scene_layout

SPECS = (
    InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.4, 0.4)),
    InstanceSpec("a blob", InstanceKind.MASK, mask=MaskRLE.from_bitmap([[0, 1], [1, 1]])),
)


def test_a_scene_round_trips_through_the_editor_shape(project: Project) -> None:
    with project.write() as session:
        scene_id = add_scene(session, SceneLayout("s", "a caption", 512, 512, SPECS, seed=4)).id
    with project.read() as session:
        data = read_scene(get_scene(session, scene_id))
    assert [inst.spec for inst in data.instances] == list(SPECS) and data.settings == SceneSettings()
    edited = dataclasses.replace(
        data,
        caption="a new caption",
        width=768,
        settings=SceneSettings(steps=20, scheduler=Scheduler.DDIM, seed_mode="random"),
        instances=(dataclasses.replace(data.instances[1], locked=True, color="#123456"), data.instances[0]),
    )
    with project.write() as session:
        write_scene(session, get_scene(session, scene_id), edited)
    with project.read() as session:
        scene = get_scene(session, scene_id)
        again = read_scene(scene)
        stored = dict(scene.overrides)
    assert stored == {"steps": 20, "scheduler": "ddim", "seed_mode": "random"}
    strip = lambda d: dataclasses.replace(d, instances=tuple((i.spec, i.locked, i.color) for i in d.instances))  # noqa: E731
    assert strip(again) == strip(edited)


def test_a_scene_with_damaged_settings_still_opens_with_what_is_valid(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "c", 512, 512, SPECS))
        scene.overrides = {"steps": 12, "scheduler": "no such", "bogus": 1}
        scene_id = scene.id
    with project.read() as session:
        data = read_scene(get_scene(session, scene_id))
    assert data.settings == SceneSettings(steps=12)


def test_a_copy_sits_right_after_its_scene_with_the_same_content(project: Project) -> None:
    with project.write() as session:
        first = add_scene(session, SceneLayout("one", "c1", 512, 512, SPECS)).id
        add_scene(session, SceneLayout("two", "c2", 512, 512))
        get_scene(session, first).overrides = {"alpha": 0.5}
    with project.write() as session:
        copy_id = copy_scene(session, first)
    with project.read() as session:
        assert [s.name for s in list_scenes(session)] == ["one", "one copy", "two"]
        copy, source = session.get(Scene, copy_id), session.get(Scene, first)
        assert copy is not None and source is not None
        assert scene_layout(copy) == dataclasses.replace(scene_layout(source), name="one copy")
        (summary,) = scene_summaries(session, only=copy_id)
        assert summary.instance_count == len(SPECS)


def test_instances_keep_their_colours_and_locks(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "c", 512, 512))
        data = dataclasses.replace(
            read_scene(scene), instances=(InstanceData(SPECS[0], locked=True, color="#abcdef"),)
        )
        write_scene(session, scene, data)
        scene_id = scene.id
    with project.read() as session:
        (inst,) = read_scene(get_scene(session, scene_id)).instances
    assert (inst.locked, inst.color) == (True, "#abcdef")
