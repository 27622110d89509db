import numpy as np

from engine.demo.analysis import (
    classify_shape,
    colour_labels,
    edit_locality,
    find_blob,
    mask_iou,
    scribble_hit_rate,
)
from engine.demo.world import generate
from engine.geometry import box_iou


def test_on_ground_truth_images_placement_is_near_perfect() -> None:
    box_ious, mask_ious, points, scribbles, shapes = [], [], [], [], []
    for seed in range(60):
        scene = generate(seed, size=128)
        labels = colour_labels(scene.image)
        rng = np.random.default_rng(seed)
        for inst in scene.instances:
            blob = find_blob(scene.image, inst.colour, labels)
            assert blob is not None
            box_ious.append(box_iou(blob.box, inst.box))
            mask_ious.append(mask_iou(blob.mask, inst.mask))
            points.append(blob.contains(inst.centre))
            scribbles.append(scribble_hit_rate(blob, inst.scribble(rng)))
            shapes.append(classify_shape(blob) == inst.shape)
    assert np.mean(np.array(box_ious) >= 0.5) == 1.0 and np.mean(box_ious) > 0.95
    assert np.mean(mask_ious) > 0.93
    assert all(points)
    assert np.mean(scribbles) > 0.99
    assert np.mean(shapes) >= 0.98


def test_a_misplaced_instance_scores_badly() -> None:
    scene = generate(3, size=64)
    inst = scene.instances[0]
    shifted = np.roll(scene.image, 20, axis=1)
    blob = find_blob(shifted, inst.colour)
    assert blob is not None
    assert box_iou(blob.box, inst.box) < 0.5 and mask_iou(blob.mask, inst.mask) < 0.5


def test_an_absent_colour_has_no_blob() -> None:
    scene = generate(3)
    missing = next(
        c
        for c in ("red", "green", "blue", "yellow", "purple", "orange")
        if c not in {i.colour for i in scene.instances}
    )
    assert find_blob(scene.image, missing) is None


def test_the_largest_region_wins_over_specks() -> None:
    image = np.full((32, 32, 3), 150, np.uint8)
    image[2, 2] = (220, 30, 30)
    image[10:20, 10:22] = (220, 30, 30)
    blob = find_blob(image, "red")
    assert blob is not None and blob.area == 120 and blob.box == (10 / 32, 10 / 32, 22 / 32, 20 / 32)


def test_edit_locality_separates_inside_from_outside() -> None:
    before = np.zeros((64, 64, 3), np.uint8)
    after = before.copy()
    after[10:20, 10:20] = 200
    after[40, 40] = 10
    outside, inside = edit_locality(before, after, [(10 / 64, 10 / 64, 20 / 64, 20 / 64)])
    assert inside == 200 and 0 < outside < 0.01
