"""From an instance's geometry (normalised, as the user drew it) to the position net's location inputs.

The official preprocessing (spec §3.3) sets the conventions the model was trained with:
- points default to the box centre;
- a scribble is 20 points sorted by their distance to the origin (0, 0);
- a polygon is 256 points: 128 on the outline, evenly spaced along it, and 128 inside, one from each of
  128 equal groups of the region's pixels ranked by distance to their centroid; all 256 then sorted by
  distance to the origin;
- the mask is a binary image of the canvas.
Where the official code draws random points, we sample evenly instead, so a render is deterministic.
Locations the user did not give are derived where the model benefits (a mask's box, a scribble's box),
and zero otherwise, which the model reads as "present, no such location".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image, ImageDraw

from engine.geometry import bitmap_bounding_box
from engine.request import InstanceKind, InstanceSpec

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LocationInputs:
    box: torch.Tensor  # (4,)
    point: torch.Tensor  # (2,)
    scribble: torch.Tensor  # (2 * scribble_points,)
    polygon: torch.Tensor  # (2 * polygon_points,)
    seg: torch.Tensor | None  # (side, side) float 0/1, or None


def location_inputs(
    spec: InstanceSpec, *, scribble_points: int = 20, polygon_points: int = 256, seg_side: int = 512
) -> LocationInputs:
    """The model inputs for one instance. The mask image is square: the model sees the canvas squashed."""
    mask = instance_mask(spec, seg_side)
    box = spec.box
    if box is None and mask is not None:
        box = bitmap_bounding_box(mask)
    if box is None and spec.scribble is not None:
        xs, ys = zip(*spec.scribble, strict=True)
        box = (min(xs), min(ys), max(xs), max(ys))
    if box is None and spec.point is not None:
        # A zero-size box at the point, not the official [0, 0, 0, 0] (a box in the corner), which would
        # mislead the model whenever boxes are not dropped (a scene that mixes points and boxes).
        box = (spec.point[0], spec.point[1], spec.point[0], spec.point[1])
    box_array = np.array(box if box is not None else (0.0, 0.0, 0.0, 0.0))
    point = (
        spec.point
        if spec.point is not None
        else ((box_array[0] + box_array[2]) / 2, (box_array[1] + box_array[3]) / 2)
    )

    scribble = np.zeros((scribble_points, 2))
    if spec.scribble is not None:
        scribble = _by_distance_to_origin(resample_polyline(np.array(spec.scribble), scribble_points))
    polygon = np.zeros((polygon_points, 2))
    if mask is not None and mask.any():
        outline = np.array(spec.polygon) if spec.polygon is not None else _mask_outline(mask)
        polygon = _by_distance_to_origin(
            np.concatenate(
                [
                    resample_polyline(np.vstack([outline, outline[:1]]), polygon_points // 2),
                    _interior_points(mask, polygon_points - polygon_points // 2),
                ]
            )
        )
    return LocationInputs(
        box=torch.tensor(box_array, dtype=torch.float32),
        point=torch.tensor(point, dtype=torch.float32),
        scribble=torch.tensor(scribble.reshape(-1), dtype=torch.float32),
        polygon=torch.tensor(polygon.reshape(-1), dtype=torch.float32),
        seg=None if mask is None else torch.from_numpy(mask.astype(np.float32)),
    )


def instance_mask(spec: InstanceSpec, side: int) -> npt.NDArray[np.bool_] | None:
    """The instance's region on a side x side image: its bitmap (resized), else its polygon, else None."""
    if spec.kind is not InstanceKind.MASK:
        return None
    if spec.mask is not None:
        bitmap = Image.fromarray(spec.mask.decode() * 255)
        return np.asarray(bitmap.resize((side, side), Image.Resampling.NEAREST)) > 127
    assert spec.polygon is not None  # a valid mask instance has one or the other
    image = Image.new("L", (side, side), 0)
    ImageDraw.Draw(image).polygon([(x * side, y * side) for x, y in spec.polygon], fill=255)
    return np.asarray(image) > 127


def resample_polyline(points: FloatArray, count: int) -> FloatArray:
    """`count` points evenly spaced by arc length along the polyline (its ends included)."""
    if len(points) == 1:
        return np.repeat(points, count, axis=0)
    segment = np.linalg.norm(np.diff(points, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(segment)])
    if arc[-1] == 0:
        return np.repeat(points[:1], count, axis=0)
    targets = np.linspace(0.0, arc[-1], count)
    return np.stack([np.interp(targets, arc, points[:, 0]), np.interp(targets, arc, points[:, 1])], axis=1)


def _by_distance_to_origin(points: FloatArray) -> FloatArray:
    return points[np.argsort(np.hypot(points[:, 0], points[:, 1]), kind="stable")]


def _pixel_centres(mask: npt.NDArray[np.bool_]) -> FloatArray:
    ys, xs = np.nonzero(mask)
    side_y, side_x = mask.shape
    return np.stack([(xs + 0.5) / side_x, (ys + 0.5) / side_y], axis=1)


def _mask_outline(mask: npt.NDArray[np.bool_]) -> FloatArray:
    """The region's boundary pixels, ordered by angle around its centroid (a closed walk for simple shapes)."""
    padded = np.pad(mask, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    boundary = _pixel_centres(mask & ~inner)
    centre = boundary.mean(axis=0)
    angles = np.arctan2(boundary[:, 1] - centre[1], boundary[:, 0] - centre[0])
    return boundary[np.argsort(angles, kind="stable")]


def _interior_points(mask: npt.NDArray[np.bool_], count: int) -> FloatArray:
    """One pixel from each of `count` equal groups of the region's pixels ranked by distance to the centroid."""
    pixels = _pixel_centres(mask)
    ranked = pixels[np.argsort(np.hypot(*(pixels - pixels.mean(axis=0)).T), kind="stable")]
    if len(ranked) < count:
        picks = np.linspace(0, len(ranked) - 1, count).round().astype(int)
    else:
        bounds = np.linspace(0, len(ranked), count + 1)
        picks = ((bounds[:-1] + bounds[1:]) / 2).astype(int)
    chosen: FloatArray = ranked[picks]
    return chosen
