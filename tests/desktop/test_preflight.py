from desktop.preflight import preflight
from engine.request import InstanceKind, InstanceSpec
from projects.scene_data import InstanceData, SceneData


def scene(*specs: InstanceSpec, caption: str = "a scene") -> SceneData:
    return SceneData(1, "s", caption, width=512, height=512, instances=tuple(InstanceData(s) for s in specs))


def test_a_good_scene_has_no_warnings() -> None:
    spec = InstanceSpec(caption="a cat", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    assert preflight(scene(spec), lambda text: len(text.split()) + 2) == []


def test_each_problem_is_named() -> None:
    tiny = InstanceSpec(caption="a flea", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.11, 0.5))
    unnamed = InstanceSpec(caption="", kind=InstanceKind.POINT, point=(0.5, 0.5))
    outside = InstanceSpec(caption="a snake", kind=InstanceKind.SCRIBBLE, scribble=((0.5, 0.5), (1.2, 0.5)))
    wordy = InstanceSpec(caption="word " * 80, kind=InstanceKind.POINT, point=(0.5, 0.5))
    many = [InstanceSpec(caption="x", kind=InstanceKind.POINT, point=(0.5, 0.5))] * 27
    messages = [
        w.message for w in preflight(scene(tiny, unnamed, outside, wordy, *many), lambda t: len(t.split()) + 2)
    ]
    assert any("31 instances" in m for m in messages)
    assert any("instance 1 (a flea): the box is too small" in m for m in messages)
    assert any("instance 2 has no caption" in m for m in messages)
    assert any("instance 3 (a snake): part of it lies outside the canvas" in m for m in messages)
    assert any("instance 4" in m and "longer than 77 tokens" in m for m in messages)


def test_a_long_global_caption_is_reported() -> None:
    messages = [w.message for w in preflight(scene(caption="word " * 100), lambda t: len(t.split()) + 2)]
    assert messages == ["the caption is longer than 77 tokens; the end is cut off"]


def test_the_demo_model_flags_words_it_does_not_know_and_lists_what_it_knows() -> None:
    cat = InstanceSpec(caption="a gray British Shorthair", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    circle = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.5, 0.5, 0.9, 0.9))
    shapes = scene(cat, circle, caption="a red circle on a white background")
    warnings = preflight(shapes, model_id="demo")
    assert [w.message for w in warnings] == [
        "the demo model renders at its own scale: this 512x512 canvas becomes a 64x64 image (shown scaled to the canvas)",
        "the demo model draws only coloured shapes: a red, green, blue, yellow, purple or orange circle, square, "
        "triangle or star, on a grey, white, beige or light blue background",
        "instance 1 (a gray British Shorthair): the demo model does not know “gray” (it knows “grey”), “british”, "
        "“shorthair”",
    ]
    assert warnings[2].uid == shapes.instances[0].uid
    assert preflight(shapes, model_id="sd15") == [] and preflight(shapes) == []


def test_a_scene_in_the_demo_world_at_its_size_has_no_demo_warnings() -> None:
    circle = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    shapes = SceneData(
        1, "s", "a red circle on a white background", width=96, height=64, instances=(InstanceData(circle),)
    )
    assert preflight(shapes, model_id="demo") == []
