"""The demo model's checker on ground-truth world scenes: a scene drawn exactly as its layout asks is all
placed for every location kind; a blank image misses everything; a caption naming the wrong shape scores 0;
a box moved away from its shape overlaps little."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.checkers.shape_world import ShapeWorldChecker, caption_terms
from engine.demo.world import BACKGROUNDS, SHAPES, WorldScene, generate
from engine.placement_report import PlacementThresholds
from engine.request import InstanceKind, InstanceSpec, RenderRequest

THRESHOLDS = PlacementThresholds()
SEEDS = (1, 2, 3)


def request_for(scene: WorldScene, specs: tuple[InstanceSpec, ...]) -> RenderRequest:
    return RenderRequest(prompt=scene.caption, width=64, height=64, instances=specs)


@pytest.mark.parametrize("kind", list(InstanceKind))
@pytest.mark.parametrize("seed", SEEDS)
def test_a_ground_truth_scene_is_all_placed(kind: InstanceKind, seed: int) -> None:
    scene = generate(seed, min_instances=2)
    report = ShapeWorldChecker().check(scene.image, request_for(scene, scene.specs(kind)), THRESHOLDS)
    assert report.checker == "shape-world" and report.thresholds == THRESHOLDS
    assert len(report.instances) == len(scene.instances) >= 2
    assert report.all_placed(), report.to_dict()
    for found, truth in zip(report.instances, scene.instances, strict=True):
        assert found.score == 1.0
        assert found.box is not None and np.allclose(found.box, truth.box, atol=1 / 64)


def test_a_blank_image_misses_every_instance() -> None:
    scene = generate(4, min_instances=3)
    blank = np.empty_like(scene.image)
    blank[:] = BACKGROUNDS[scene.background]
    report = ShapeWorldChecker().check(blank, request_for(scene, scene.specs(InstanceKind.BOX)), THRESHOLDS)
    assert report.missed() == tuple(range(len(scene.instances)))
    assert not any(inst.found for inst in report.instances)
    assert report.summary() == f"{len(scene.instances)} of {len(scene.instances)} missed"


def test_a_caption_naming_the_wrong_shape_scores_zero() -> None:
    scene = generate(5, min_instances=2)
    specs = list(scene.specs(InstanceKind.BOX))
    truth = scene.instances[0]
    other = next(shape for shape in SHAPES if shape != truth.shape)
    specs[0] = dataclasses.replace(specs[0], caption=specs[0].caption.replace(truth.shape, other))
    assert caption_terms(specs[0].caption) == (truth.colour, other)
    report = ShapeWorldChecker().check(scene.image, request_for(scene, tuple(specs)), THRESHOLDS)
    first = report.instances[0]
    assert first.found and first.score == 0.0 and first.iou > 0.9  # right place, wrong shape
    assert report.missed() == (0,)


def test_a_moved_box_overlaps_little() -> None:
    scene = generate(6, max_instances=1)
    (spec,) = scene.specs(InstanceKind.BOX)
    assert spec.box is not None
    x0, y0, x1, y1 = spec.box
    # Mirror the box across the canvas's centre: the shape is no longer where it asks.
    moved = dataclasses.replace(spec, box=(1 - x1, 1 - y1, 1 - x0, 1 - y0))
    report = ShapeWorldChecker().check(scene.image, request_for(scene, (moved,)), THRESHOLDS)
    (found,) = report.instances
    assert found.found and found.score == 1.0
    assert found.iou < 0.2 and report.missed() == (0,)


def test_a_caption_without_a_world_colour_cannot_be_found() -> None:
    scene = generate(7, max_instances=1)
    (spec,) = scene.specs(InstanceKind.BOX)
    unknown = dataclasses.replace(spec, caption="a dog")
    report = ShapeWorldChecker().check(scene.image, request_for(scene, (unknown,)), THRESHOLDS)
    assert report.instances[0].found is False and report.instances[0].score == 0.0
