import pytest

from engine.request import InstanceKind, InstanceSpec, MaskRLE, RequestValidationError, Scheduler
from projects.database import Project
from projects.errors import SceneNotFoundError
from projects.scene_data import INSTANCE_PALETTE
from projects.scenes import (
    SceneLayout,
    add_scene,
    find_scene,
    get_settings,
    scene_layout,
    scene_to_request,
)

INSTANCES = (
    InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.4, 0.4)),
    InstanceSpec("a star", InstanceKind.POINT, point=(0.7, 0.2)),
    InstanceSpec("a snake", InstanceKind.SCRIBBLE, scribble=((0.1, 0.9), (0.5, 0.8))),
    InstanceSpec("a kite", InstanceKind.MASK, polygon=((0.5, 0.5), (0.9, 0.5), (0.7, 0.9))),
    InstanceSpec("a blob", InstanceKind.MASK, mask=MaskRLE.from_bitmap([[0, 1], [1, 1]])),
)


def test_layout_round_trips_through_the_database(project: Project) -> None:
    layout = SceneLayout("shapes", "shapes on grass", 768, 512, INSTANCES, seed=42, negative_prompt="blurry")
    with project.write() as session:
        scene_id = add_scene(session, layout).id
    with project.read() as session:
        scene = find_scene(session, scene_id)
        assert scene_layout(scene) == layout
        assert [i.color for i in scene.instances] == list(INSTANCE_PALETTE[: len(INSTANCES)])
        assert [i.position for i in scene.instances] == list(range(len(INSTANCES)))


def test_request_takes_project_defaults_and_scene_overrides(project: Project) -> None:
    with project.write() as session:
        settings = get_settings(session)
        settings.steps, settings.negative_prompt, settings.scheduler = 25, "lowres", "ddim"
        plain = add_scene(session, SceneLayout("plain", "a", 512, 512, INSTANCES[:1], seed=3))
        custom = add_scene(
            session,
            SceneLayout(
                "custom", "b", 768, 512, INSTANCES, seed=9, negative_prompt="", overrides={"steps": 10, "mis": 0.0}
            ),
        )
        first, second = scene_to_request(session, plain), scene_to_request(session, custom)
    assert (first.steps, first.negative_prompt, first.scheduler, first.seed) == (25, "lowres", Scheduler.DDIM, 3)
    assert (second.steps, second.negative_prompt, second.mis, second.width) == (10, "", 0.0, 768)
    assert second.instances == INSTANCES


def test_scene_with_an_unfinished_instance_cannot_become_a_request(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(
            session, SceneLayout("s", "x", 512, 512, (InstanceSpec("", InstanceKind.POINT, point=(0.5, 0.5)),))
        )
        with pytest.raises(RequestValidationError, match="instance 1: caption: the caption is empty"):
            scene_to_request(session, scene)
        scene.overrides = {"stepz": 3}
        with pytest.raises(RequestValidationError, match="unknown scene overrides: stepz"):
            scene_to_request(session, scene)


def test_find_scene_by_id_or_name(project: Project) -> None:
    with project.write() as session:
        a = add_scene(session, SceneLayout("apple", "x", 512, 512)).id
        add_scene(session, SceneLayout("twin", "x", 512, 512))
        add_scene(session, SceneLayout("twin", "x", 512, 512))
        assert find_scene(session, str(a)).name == "apple"
        assert find_scene(session, "apple").id == a
        with pytest.raises(SceneNotFoundError, match="2 scenes are named 'twin'"):
            find_scene(session, "twin")
        with pytest.raises(SceneNotFoundError, match="no scene with id or name 'pear'"):
            find_scene(session, "pear")
