import numpy as np
import pytest

from engine.models.fusers import FuserConfig
from engine.regions import instance_region, slot_regions
from engine.request import InstanceKind, InstanceSpec, MaskRLE

CONFIG = FuserConfig(masked_attention=True, point_radius=0.1, scribble_radius=0.05)


def cells(region: np.ndarray) -> set[tuple[int, int]]:
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(region), strict=True)}


def test_a_box_covers_the_cells_it_overlaps() -> None:
    spec = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.25, 0.5, 0.5, 0.8))
    region = instance_region(spec, 8, 8, CONFIG)
    assert cells(region) == {(r, c) for r in range(4, 7) for c in range(2, 4)}


def test_a_box_on_a_wide_canvas_keeps_its_place() -> None:
    spec = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.0, 0.0, 0.5, 0.5))
    region = instance_region(spec, 4, 6, CONFIG)
    assert region.shape == (4, 6) and cells(region) == {(r, c) for r in range(2) for c in range(3)}


def test_a_zero_size_box_still_covers_its_cell() -> None:
    spec = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.3, 0.3, 0.3, 0.3))
    assert cells(instance_region(spec, 10, 10, CONFIG)) == {(3, 3)}


def test_a_point_covers_a_disc_around_it() -> None:
    spec = InstanceSpec("a red circle", InstanceKind.POINT, point=(0.5, 0.5))
    region = instance_region(spec, 20, 20, CONFIG)
    ys, xs = np.nonzero(region)
    centres = np.stack([(xs + 0.5) / 20, (ys + 0.5) / 20], axis=1)
    assert np.linalg.norm(centres - 0.5, axis=1).max() <= 0.1 + 1e-9
    assert region.sum() == 12  # the cells whose centres lie within 0.1 of (0.5, 0.5) on a 20x20 grid
    wider = instance_region(spec, 20, 20, FuserConfig(point_radius=0.2))
    assert wider.sum() > 3 * region.sum()


def test_a_point_on_a_coarse_grid_covers_at_least_its_own_cell() -> None:
    spec = InstanceSpec("a red circle", InstanceKind.POINT, point=(0.99, 0.01))
    assert (0, 1) in cells(instance_region(spec, 2, 2, FuserConfig(point_radius=0.0)))


def test_a_scribble_covers_the_band_along_its_stroke_between_its_points() -> None:
    spec = InstanceSpec("a red circle", InstanceKind.SCRIBBLE, scribble=((0.1, 0.52), (0.9, 0.52)))
    region = instance_region(spec, 10, 10, FuserConfig(scribble_radius=0.08))
    # Two points far apart: the band along the segment between them (cell centres within 0.08), not two dots.
    assert cells(region) == {(4, c) for c in range(1, 9)} | {(5, c) for c in range(10)}


def test_a_mask_covers_the_cells_its_pixels_fall_in() -> None:
    bitmap = np.zeros((64, 64), dtype=np.uint8)
    bitmap[10:20, 40:60] = 1
    spec = InstanceSpec("a red circle", InstanceKind.MASK, mask=MaskRLE.from_bitmap(bitmap))
    region = instance_region(spec, 16, 16, CONFIG)
    assert cells(region) == {(r, c) for r in range(2, 5) for c in range(10, 15)}


def test_a_polygon_covers_its_own_cells_not_its_box() -> None:
    triangle = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    region = instance_region(InstanceSpec("a red triangle", InstanceKind.MASK, polygon=triangle), 8, 8, CONFIG)
    assert region[0, 0] and region[0, 6] and not region[7, 7]


def test_slots_hold_each_instance_in_order_and_nothing_after() -> None:
    specs = [
        InstanceSpec("a red circle", InstanceKind.BOX, box=(0.0, 0.0, 0.5, 0.5)),
        InstanceSpec("a blue star", InstanceKind.POINT, point=(0.75, 0.75)),
    ]
    regions = slot_regions(specs, 5, 8, 8, CONFIG)
    assert regions.shape == (1, 5, 8, 8)
    assert regions[0, 0, :4, :4].all() and regions[0, 0].sum() == 16
    assert regions[0, 1, 6, 6] == 1 and regions[0, 1, 0, 0] == 0
    assert regions[0, 2:].sum() == 0


def test_an_instance_without_its_location_is_refused() -> None:
    spec = InstanceSpec.__new__(InstanceSpec)
    object.__setattr__(spec, "kind", InstanceKind.BOX)
    object.__setattr__(spec, "box", None)
    with pytest.raises(ValueError, match="has no region"):
        instance_region(spec, 4, 4, CONFIG)
