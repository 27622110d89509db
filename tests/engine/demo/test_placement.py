"""The placement measurement, checked on renderers whose answer is known."""

import numpy as np

from engine.demo.placement import HELD_OUT_SEED, evaluation_report, measure, measure_edit_locality, report_table
from engine.demo.world import generate
from engine.request import InstanceKind, RenderRequest


def ground_truth(request: RenderRequest) -> np.ndarray:
    """A perfect renderer: the world's own image for the layout's seed (moved instances are not honoured)."""
    return generate(request.seed, size=request.width).image


def blank(request: RenderRequest) -> np.ndarray:
    return np.full((request.height, request.width, 3), 150, np.uint8)


def test_a_perfect_renderer_meets_every_target() -> None:
    scores = measure(ground_truth, layouts=25)
    assert scores[InstanceKind.BOX].score == 1.0
    assert scores[InstanceKind.POINT].score == 1.0
    assert scores[InstanceKind.SCRIBBLE].score > 0.99
    assert scores[InstanceKind.MASK].score > 0.9
    assert all(s.shape_accuracy > 0.95 for s in scores.values())


def test_the_report_has_both_sampler_settings_and_the_edit_ratio() -> None:
    report = evaluation_report(ground_truth, layouts=4, steps=3, edits=2, canvas_layouts=0)
    assert report["mis_on"]["box"]["score"] == 1.0 and report["mis_off"]["point"]["met"]
    assert report["edit_locality"]["ratio"] == 0.0  # the ground truth ignores the move altogether
    printed = report_table(report)
    assert "placement over 4 held-out layouts" in printed and printed.count(" yes ") == 4
    assert "right shape" in printed and printed.rstrip().endswith("(ratio 0.000, target <= 0.25)")
    blank_table = report_table(evaluation_report(blank, layouts=2, steps=3, edits=1, canvas_layouts=1))
    assert blank_table.count(" no ") == 4 and blank_table.count("not met") == 2


def test_a_renderer_that_places_nothing_scores_zero() -> None:
    scores = measure(blank, layouts=10)
    assert all(s.score == 0.0 and not any(s.found) for s in scores.values())


def test_the_layouts_are_held_out_and_the_same_for_every_kind() -> None:
    seen: dict[InstanceKind, list[int]] = {}

    def recording(request: RenderRequest) -> np.ndarray:
        seen.setdefault(request.instances[0].kind, []).append(request.seed)
        return blank(request)

    measure(recording, layouts=3)
    assert all(seeds == [HELD_OUT_SEED, HELD_OUT_SEED + 1, HELD_OUT_SEED + 2] for seeds in seen.values())
    assert set(seen) == set(InstanceKind)


def test_edit_locality_of_a_renderer_that_ignores_the_edit_is_zero_everywhere() -> None:
    outside, inside = measure_edit_locality(ground_truth, edits=5)
    assert outside == 0.0 and inside == 0.0


def test_a_scene_on_a_non_square_canvas_keeps_its_pixels_and_scores_perfectly() -> None:
    from engine.demo.placement import KindScore, request_for, score_image
    from engine.demo.world import on_canvas

    scene = generate(HELD_OUT_SEED)
    for width, height, left, top in ((96, 64, 20, 0), (64, 96, 0, 32)):
        wide = on_canvas(scene, width, height, left, top)
        assert wide.image.shape == (height, width, 3)
        assert np.array_equal(wide.image[top : top + 64, left : left + 64], scene.image)
        request = request_for(wide, InstanceKind.BOX)
        assert (request.width, request.height) == (width, height)
        for spec, inst in zip(request.instances, scene.instances, strict=True):
            assert spec.box is not None
            x0, y0, x1, y1 = inst.box
            expected = (
                (x0 * 64 + left) / width,
                (y0 * 64 + top) / height,
                (x1 * 64 + left) / width,
                (y1 * 64 + top) / height,
            )
            assert np.allclose(spec.box, expected)
        score = KindScore(InstanceKind.BOX)
        score_image(wide, InstanceKind.BOX, wide.image, score)
        assert score.score == 1.0 and all(score.shape_right)


def test_canvas_placement_asks_for_both_shapes_and_scores_a_blank_renderer_zero() -> None:
    from engine.demo.placement import measure_canvases

    sizes: list[tuple[int, int]] = []

    def recording(request: RenderRequest) -> np.ndarray:
        sizes.append((request.width, request.height))
        return blank(request)

    assert measure_canvases(recording, layouts=2) == {"96x64": 0.0, "64x96": 0.0}
    assert sizes == [(96, 64), (96, 64), (64, 96), (64, 96)]
