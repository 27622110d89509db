"""Where each instance lies on the latent grid, for instance-masked attention (`engine.models.fusers`).

One region per location kind:
- box: the latent cells the box overlaps (a zero-size box still covers the cell it lies in);
- mask: the cells any of the mask's pixels fall in (a polygon is rasterised first);
- point: the cells within `point_radius` of the point, and the cell it lies in;
- scribble: the cells within `scribble_radius` of the stroke (its segments, not only its points).
Geometry is normalised, so a non-square canvas gets non-square regions of the same layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from engine.layout_inputs import instance_mask
from engine.models.fusers import FuserConfig
from engine.request import InstanceKind, InstanceSpec

BoolGrid = npt.NDArray[np.bool_]


def instance_region(spec: InstanceSpec, height: int, width: int, config: FuserConfig) -> BoolGrid:
    """(height, width) bool: the latent cells `spec` covers."""
    if spec.kind is InstanceKind.MASK:
        return _mask_cells(spec, height, width)
    if spec.kind is InstanceKind.POINT and spec.point is not None:
        return _near_polyline([spec.point], height, width, config.point_radius)
    if spec.kind is InstanceKind.SCRIBBLE and spec.scribble:
        return _near_polyline(spec.scribble, height, width, config.scribble_radius)
    if spec.box is None:
        raise ValueError(f"a {spec.kind.value} instance without its location has no region")
    return _box_cells(spec.box, height, width)


def slot_regions(
    instances: Sequence[InstanceSpec], slots: int, height: int, width: int, config: FuserConfig
) -> torch.Tensor:
    """(1, slots, height, width) float 0/1: instance i's region in slot i, empty slots all 0."""
    regions = np.zeros((1, slots, height, width), dtype=np.float32)
    for slot, spec in enumerate(instances):
        regions[0, slot] = instance_region(spec, height, width, config)
    return torch.from_numpy(regions)


def _cell_edges(count: int) -> npt.NDArray[np.float64]:
    return np.arange(count + 1, dtype=np.float64) / count


def _box_cells(box: tuple[float, float, float, float], height: int, width: int) -> BoolGrid:
    x0, y0, x1, y1 = box
    xs, ys = _cell_edges(width), _cell_edges(height)
    # Cell [a, b) overlaps [x0, x1] when b > x0 and a < x1; `<=` keeps a zero-size box on its own cell.
    cols = (xs[1:] > x0) & (xs[:-1] <= x1) & ((xs[:-1] < x1) | (x0 == x1))
    rows = (ys[1:] > y0) & (ys[:-1] <= y1) & ((ys[:-1] < y1) | (y0 == y1))
    return rows[:, None] & cols[None, :]


def _mask_cells(spec: InstanceSpec, height: int, width: int) -> BoolGrid:
    # Rasterised finely enough that every latent cell holds whole pixels, then any pixel marks its cell.
    scale = 8
    fine = instance_mask(spec, max(height, width) * scale)
    if fine is None:
        raise ValueError("a mask instance without a mask or polygon has no region")
    side = fine.shape[0]
    rows = np.minimum((np.arange(side) * height) // side, height - 1)
    cols = np.minimum((np.arange(side) * width) // side, width - 1)
    cells = np.zeros((height, width), dtype=bool)
    ys, xs = np.nonzero(fine)
    cells[rows[ys], cols[xs]] = True
    return cells


def _near_polyline(points: Sequence[tuple[float, float]], height: int, width: int, radius: float) -> BoolGrid:
    """Cells whose centre lies within `radius` of the polyline, plus the cells its points fall in."""
    cy = (np.arange(height) + 0.5) / height
    cx = (np.arange(width) + 0.5) / width
    grid = np.stack(np.meshgrid(cx, cy, indexing="xy"), axis=-1)  # (H, W, 2) as x, y
    path = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    starts, ends = path, np.concatenate([path[1:], path[-1:]]) if len(path) > 1 else path
    nearest = np.full((height, width), np.inf)
    for a, b in zip(starts, ends, strict=True):
        ab = b - a
        length = float(ab @ ab)
        t = np.zeros((height, width)) if length == 0 else np.clip(((grid - a) @ ab) / length, 0.0, 1.0)
        closest = a + t[..., None] * ab
        nearest = np.minimum(nearest, np.linalg.norm(grid - closest, axis=-1))
    cells = nearest <= radius
    for x, y in path:
        cells[min(int(y * height), height - 1), min(int(x * width), width - 1)] = True
    return cells
