import numpy as np
import pytest

from engine.demo.world import BACKGROUNDS, COLOURS, SHAPES, generate, scene_caption
from engine.request import InstanceKind, RenderRequest


def test_a_scene_is_a_pure_function_of_its_seed() -> None:
    a, b = generate(12), generate(12)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    assert [i.box for i in a.instances] == [i.box for i in b.instances]
    assert not np.array_equal(generate(13).image, a.image)


def test_scenes_cover_the_world() -> None:
    scenes = [generate(seed) for seed in range(300)]
    counts = {len(s.instances) for s in scenes}
    assert counts == set(range(1, 7))
    assert {i.shape for s in scenes for i in s.instances} == set(SHAPES)
    assert {i.colour for s in scenes for i in s.instances} == set(COLOURS)
    assert {s.background for s in scenes} == set(BACKGROUNDS)
    radii = [i.radius for s in scenes for i in s.instances]
    assert min(radii) < 0.11 and max(radii) > 0.2, "varied sizes"


def test_instances_have_their_own_colour_and_do_not_overlap() -> None:
    for seed in range(100):
        scene = generate(seed)
        assert len({i.colour for i in scene.instances}) == len(scene.instances)
        total = np.zeros(scene.image.shape[:2], int)
        for inst in scene.instances:
            total += inst.mask
            assert inst.mask.any()
        assert total.max() <= 1


def test_the_image_shows_each_shape_in_its_colour() -> None:
    scene = generate(5, size=128)
    for inst in scene.instances:
        core = scene.image[inst.mask].astype(float).mean(axis=0)
        assert np.linalg.norm(core - np.array(COLOURS[inst.colour])) < 25


def test_captions() -> None:
    scene = generate(4)
    assert scene.caption.endswith(f"on a {scene.background} background")
    assert "an orange" in scene_caption(["an orange star", "a red circle"], "grey")
    assert scene_caption(["a red circle"], "grey") == "a red circle on a grey background"


@pytest.mark.parametrize("kind", list(InstanceKind))
def test_every_location_kind_is_derived_and_valid(kind: InstanceKind) -> None:
    for seed in range(40):
        scene = generate(seed)
        specs = scene.specs(kind)
        RenderRequest(prompt=scene.caption, width=64, height=64, instances=specs)  # validates every instance
        for inst, spec in zip(scene.instances, specs, strict=True):
            assert spec.kind is kind and spec.caption == inst.caption
            if kind is InstanceKind.SCRIBBLE:
                assert spec.scribble is not None
                inside = [inst.mask[min(63, int(y * 64)), min(63, int(x * 64))] for x, y in spec.scribble]
                assert np.mean(inside) >= 0.9, "the scribble stays inside its shape"


def test_too_many_instances_for_the_colours_is_refused() -> None:
    with pytest.raises(ValueError, match="each instance has its own colour"):
        generate(0, max_instances=7)


def test_crowded_scenes_hold_at_least_the_minimum_where_there_is_room() -> None:
    counts = [len(generate(seed, min_instances=3).instances) for seed in range(40)]
    assert min(counts) >= 2 and sum(c >= 3 for c in counts) >= 36  # a shape with no room is left out, rarely
    assert max(counts) <= 6 and len(set(counts)) > 1
    with pytest.raises(ValueError, match="min_instances <= max_instances"):
        generate(0, min_instances=4, max_instances=3)


def test_instance_captions_list_every_caption_the_world_makes() -> None:
    from engine.demo.world import instance_captions

    captions = instance_captions()
    assert len(captions) == len(set(captions)) == len(COLOURS) * len(SHAPES)
    assert {inst.caption for seed in range(50) for inst in generate(seed).instances} <= set(captions)
    assert "an orange star" in captions
