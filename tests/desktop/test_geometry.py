import numpy as np
import pytest

from desktop.geometry import bounds, fit_to_box, move_vertex, resample_polyline, translate
from engine.request import InstanceKind, InstanceSpec, MaskRLE


def box(x0: float, y0: float, x1: float, y1: float) -> InstanceSpec:
    return InstanceSpec(caption="a", kind=InstanceKind.BOX, box=(x0, y0, x1, y1))


def test_translate_moves_every_part_and_stops_at_the_edge() -> None:
    spec = InstanceSpec(caption="a", kind=InstanceKind.SCRIBBLE, scribble=((0.1, 0.1), (0.3, 0.2)))
    moved = translate(spec, 0.2, 0.1)
    assert moved.scribble is not None
    assert [v for p in moved.scribble for v in p] == pytest.approx([0.3, 0.2, 0.5, 0.3])
    assert translate(box(0.5, 0.5, 0.9, 0.9), 0.5, -0.7).box == pytest.approx((0.6, 0.0, 1.0, 0.4))


def test_fit_to_box_scales_polygons_and_masks_with_their_bounds() -> None:
    bitmap = np.zeros((100, 100), dtype=np.uint8)
    bitmap[10:30, 20:60] = 1
    spec = InstanceSpec(caption="a", kind=InstanceKind.MASK, mask=MaskRLE.from_bitmap(bitmap))
    assert bounds(spec) == pytest.approx((0.2, 0.1, 0.6, 0.3))
    fitted = fit_to_box(spec, (0.5, 0.5, 0.7, 0.9))
    assert bounds(fitted) == pytest.approx((0.5, 0.5, 0.7, 0.9), abs=0.011)
    polygon = InstanceSpec(caption="a", kind=InstanceKind.MASK, polygon=((0.1, 0.1), (0.3, 0.1), (0.2, 0.3)))
    fitted_polygon = fit_to_box(polygon, (0.0, 0.0, 1.0, 1.0)).polygon
    assert fitted_polygon is not None
    assert [v for p in fitted_polygon for v in p] == pytest.approx([0, 0, 1, 0, 0.5, 1])


def test_moving_a_vertex_drops_the_stale_bitmap() -> None:
    spec = InstanceSpec(
        caption="a",
        kind=InstanceKind.MASK,
        polygon=((0.1, 0.1), (0.3, 0.1), (0.2, 0.3)),
        mask=MaskRLE.from_bitmap(np.ones((4, 4))),
    )
    moved = move_vertex(spec, 2, (0.2, 1.4))
    assert moved.polygon is not None and moved.polygon[2] == (0.2, 1.0) and moved.mask is None


def test_resampled_strokes_are_evenly_spaced() -> None:
    stroke = [(0.0, 0.0), (0.01, 0.0), (0.02, 0.0), (1.0, 0.0)]  # uneven input
    points = resample_polyline(stroke, 5)
    assert [p[0] for p in points] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert resample_polyline([(0.5, 0.5)], 3) == ((0.5, 0.5),) * 3
