"""Instance geometry in normalised coordinates: bounds, moves, resizes and freehand resampling.

Everything the editor stores is in [0, 1] image coordinates, so a scene keeps its layout when its canvas
size changes. These functions are pure (no Qt), so the canvas and the tests share them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from engine.request import InstanceSpec, MaskRLE

Point = tuple[float, float]
Box = tuple[float, float, float, float]

SCRIBBLE_POINTS = 20  # the model reads 20 scribble points; more would only be resampled away


def clamp01(value: float) -> float:
    return min(1.0, max(0.0, value))


def bounds(spec: InstanceSpec) -> Box:
    """The smallest box holding everything the instance has (a point is a zero-size box)."""
    xs: list[float] = []
    ys: list[float] = []
    if spec.box is not None:
        xs += [spec.box[0], spec.box[2]]
        ys += [spec.box[1], spec.box[3]]
    if spec.point is not None:
        xs.append(spec.point[0])
        ys.append(spec.point[1])
    for points in (spec.scribble, spec.polygon):
        for x, y in points or ():
            xs.append(x)
            ys.append(y)
    if spec.mask is not None and spec.polygon is None:
        box = spec.mask.bounding_box()
        if box is not None:
            xs += [box[0], box[2]]
            ys += [box[1], box[3]]
    if not xs:
        return (0.0, 0.0, 0.0, 0.0)
    return (min(xs), min(ys), max(xs), max(ys))


def _map_points(points: Sequence[Point] | None, fn: _PointMap) -> tuple[Point, ...] | None:
    return None if points is None else tuple(fn(p) for p in points)


class _PointMap:
    """An axis-aligned affine map x' = x * sx + tx (and y alike)."""

    def __init__(self, sx: float, sy: float, tx: float, ty: float) -> None:
        self.sx, self.sy, self.tx, self.ty = sx, sy, tx, ty

    def __call__(self, p: Point) -> Point:
        return (p[0] * self.sx + self.tx, p[1] * self.sy + self.ty)


def _apply(spec: InstanceSpec, fn: _PointMap) -> InstanceSpec:
    box = spec.box
    if box is not None:
        x0, y0 = fn((box[0], box[1]))
        x1, y1 = fn((box[2], box[3]))
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    point = None if spec.point is None else fn(spec.point)
    mask = None if spec.mask is None else _map_mask(spec.mask, fn)
    return dataclasses.replace(
        spec,
        box=box,
        point=point,
        scribble=_map_points(spec.scribble, fn),
        polygon=_map_points(spec.polygon, fn),
        mask=mask,
    )


def _map_mask(mask: MaskRLE, fn: _PointMap) -> MaskRLE:
    """Resample a bitmap under the map (nearest neighbour; what falls off the canvas is lost)."""
    source = mask.decode()
    h, w = source.shape
    # For each target pixel centre, the source pixel it comes from.
    xs = ((np.arange(w) + 0.5) / w - fn.tx) / fn.sx if fn.sx else np.full(w, -1.0)
    ys = ((np.arange(h) + 0.5) / h - fn.ty) / fn.sy if fn.sy else np.full(h, -1.0)
    sx = np.floor(xs * w).astype(int)
    sy = np.floor(ys * h).astype(int)
    valid_x = (sx >= 0) & (sx < w)
    valid_y = (sy >= 0) & (sy < h)
    target = np.zeros_like(source)
    rows = np.clip(sy, 0, h - 1)
    cols = np.clip(sx, 0, w - 1)
    target[:] = source[rows][:, cols]
    target[~valid_y, :] = 0
    target[:, ~valid_x] = 0
    return MaskRLE.from_bitmap(target)


def translate(spec: InstanceSpec, dx: float, dy: float) -> InstanceSpec:
    """Move an instance by (dx, dy), held so that its bounds stay on the canvas."""
    x0, y0, x1, y1 = bounds(spec)
    dx = min(max(dx, -x0), 1.0 - x1)
    dy = min(max(dy, -y0), 1.0 - y1)
    if dx == 0 and dy == 0:
        return spec
    return _apply(spec, _PointMap(1.0, 1.0, dx, dy))


def fit_to_box(spec: InstanceSpec, target: Box) -> InstanceSpec:
    """Scale and move an instance so its bounds become `target` (clipped to the canvas)."""
    x0, y0, x1, y1 = bounds(spec)
    t0, u0, t1, u1 = (clamp01(v) for v in target)
    t0, t1 = min(t0, t1), max(t0, t1)
    u0, u1 = min(u0, u1), max(u0, u1)
    sx = (t1 - t0) / (x1 - x0) if x1 > x0 else 1.0
    sy = (u1 - u0) / (y1 - y0) if y1 > y0 else 1.0
    return _apply(spec, _PointMap(sx, sy, t0 - x0 * sx, u0 - y0 * sy))


def move_vertex(spec: InstanceSpec, index: int, to: Point) -> InstanceSpec:
    """Move one polygon vertex (the mask bitmap, if any, is dropped: the polygon now defines the shape)."""
    assert spec.polygon is not None
    polygon = list(spec.polygon)
    polygon[index] = (clamp01(to[0]), clamp01(to[1]))
    return dataclasses.replace(spec, polygon=tuple(polygon), mask=None)


def resample_polyline(points: Sequence[Point], count: int = SCRIBBLE_POINTS) -> tuple[Point, ...]:
    """`count` points evenly spaced along a freehand stroke (by arc length)."""
    array = np.asarray(points, dtype=float)
    if len(array) == 0:
        return ()
    steps = np.linalg.norm(np.diff(array, axis=0), axis=1)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] == 0:
        return tuple((float(array[0, 0]), float(array[0, 1])) for _ in range(count))
    wanted = np.linspace(0.0, along[-1], count)
    xs = np.interp(wanted, along, array[:, 0])
    ys = np.interp(wanted, along, array[:, 1])
    return tuple((clamp01(float(x)), clamp01(float(y))) for x, y in zip(xs, ys, strict=True))


def clamp_point(p: Point) -> Point:
    return (clamp01(p[0]), clamp01(p[1]))
