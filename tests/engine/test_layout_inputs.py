import numpy as np
import pytest
import torch

from engine.layout_inputs import instance_mask, location_inputs, resample_polyline
from engine.request import InstanceKind, InstanceSpec, MaskRLE


def test_box_instance_gets_its_box_and_centre_point() -> None:
    inputs = location_inputs(InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.2, 0.5, 0.6)))
    torch.testing.assert_close(inputs.box, torch.tensor([0.1, 0.2, 0.5, 0.6]))
    torch.testing.assert_close(inputs.point, torch.tensor([0.3, 0.4]))
    assert inputs.scribble.abs().sum() == 0 and inputs.polygon.abs().sum() == 0 and inputs.seg is None


def test_point_instance_gets_a_zero_size_box_at_its_point() -> None:
    inputs = location_inputs(InstanceSpec("a star", InstanceKind.POINT, point=(0.7, 0.25)))
    torch.testing.assert_close(inputs.box, torch.tensor([0.7, 0.25, 0.7, 0.25]))
    torch.testing.assert_close(inputs.point, torch.tensor([0.7, 0.25]))


def test_scribble_becomes_twenty_points_sorted_by_distance_to_the_origin() -> None:
    stroke = ((0.9, 0.9), (0.5, 0.1), (0.1, 0.5))
    inputs = location_inputs(InstanceSpec("a snake", InstanceKind.SCRIBBLE, scribble=stroke))
    points = inputs.scribble.view(20, 2).numpy()
    distances = np.hypot(points[:, 0], points[:, 1])
    assert np.all(np.diff(distances) >= 0)
    for end in (stroke[0], stroke[-1]):
        assert np.isclose(points, end, atol=1e-6).all(axis=1).any(), f"the stroke's end {end} is kept"
    torch.testing.assert_close(inputs.box, torch.tensor([0.1, 0.1, 0.9, 0.9]))


def test_resampling_spaces_points_evenly_along_the_line() -> None:
    points = resample_polyline(np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]), 5)
    np.testing.assert_allclose(points, [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1]])


@pytest.mark.parametrize("source", ["polygon", "bitmap"])
def test_mask_instance_gets_256_points_on_and_inside_the_region(source: str) -> None:
    square = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))
    if source == "polygon":
        spec = InstanceSpec("a kite", InstanceKind.MASK, polygon=square)
    else:
        bitmap = np.zeros((64, 64), np.uint8)
        bitmap[16:48, 16:48] = 1
        spec = InstanceSpec("a kite", InstanceKind.MASK, mask=MaskRLE.from_bitmap(bitmap))
    inputs = location_inputs(spec, seg_side=128)
    assert inputs.seg is not None and inputs.seg.shape == (128, 128)
    assert inputs.seg.sum() == pytest.approx(64 * 64, rel=0.05)
    points = inputs.polygon.view(256, 2).numpy()
    assert np.all((points >= 0.24) & (points <= 0.76)), "every polygon point lies on or in the square"
    assert np.all(np.diff(np.hypot(points[:, 0], points[:, 1])) >= 0)
    torch.testing.assert_close(inputs.box, torch.tensor([0.25, 0.25, 0.75, 0.75]), atol=0.01, rtol=0)
    on_outline = np.isclose(points, 0.25, atol=0.01) | np.isclose(points, 0.75, atol=0.01)
    assert on_outline.any(axis=1).sum() >= 128, "half the points are on the outline"


def test_masks_follow_the_canvas_squashed_to_a_square() -> None:
    spec = InstanceSpec("a bar", InstanceKind.MASK, polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
    mask = instance_mask(spec, 32)
    assert mask is not None and mask[:, :15].all() and not mask[:, 17:].any()
