"""Dataset labels from an instance's layout: a pixel box, a COCO RLE, a normalised polygon.

The rules, shared by the COCO and YOLO writers:

- The region of an instance is its mask bitmap if it has one, else its polygon (rasterised), else
  none. Its box is the bounds of that region; without a region (or if the region is empty at the
  image's size) the instance's box, else the bounds of its scribble. A box thinner than one pixel
  (a straight scribble) is widened to one pixel, centred, inside the image.
- A point instance without any of these has no extent: it gets no label and is counted as skipped.
- An instance whose region is empty and that has no box or scribble is skipped as empty.
- As a polygon (YOLO segments): the polygon itself; for a bitmap, the outer boundary of its largest
  4-connected part, traced along pixel edges and simplified by at most half a mask pixel (holes are
  filled, other parts dropped); otherwise the rectangle of the box.

Labels can instead come from what a placement check found (`found_label`): the box it found, with no
region; the rules above then do not apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pycocotools import mask as coco_mask

from engine.request import InstanceSpec

Bitmap = npt.NDArray[np.uint8]
Polygon = tuple[tuple[float, float], ...]

# Douglas-Peucker tolerance for traced mask outlines, in mask pixels.
TRACE_TOLERANCE: Final = 0.5


@dataclass(frozen=True)
class Label:
    """One instance as a dataset label on a `width` x `height` image."""

    bbox: tuple[float, float, float, float]  # pixels: x, y, w, h
    area: float
    rle: dict[str, Any] | None  # COCO compressed RLE at the image size, counts as text
    polygon: Polygon  # normalised [0, 1] outline (the box's rectangle when there is no region)


def instance_label(spec: InstanceSpec, width: int, height: int) -> Label | None:
    """The label of one instance, or None if it has no extent (see the module's rules)."""
    rle = _region_rle(spec, width, height)
    bbox: tuple[float, float, float, float] | None = None
    area = 0.0
    if rle is not None:
        area = float(coco_mask.area(rle))
        if area > 0:
            x, y, w, h = (float(v) for v in coco_mask.toBbox(rle))
            bbox = (x, y, w, h)
        else:
            rle = None
    if bbox is None:
        bounds = spec.box or _bounds(spec.scribble)
        if bounds is None:
            return None
        bbox = _min_one_pixel(_to_pixels(bounds, width, height), width, height)
        area = bbox[2] * bbox[3]
    polygon = _outline(spec, rle is not None) or _rectangle(bbox, width, height)
    if rle is not None:
        rle = {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
    x, y, w, h = (round(v, 3) for v in bbox)
    return Label(bbox=(x, y, w, h), area=round(area, 3), rle=rle, polygon=polygon)


def found_label(box: tuple[float, float, float, float], width: int, height: int) -> Label:
    """The label of what a placement check found: its normalised box (x0, y0, x1, y1), as a box only."""
    x0, y0, x1, y1 = (min(1.0, max(0.0, v)) for v in box)
    bbox = _min_one_pixel(_to_pixels((x0, y0, max(x0, x1), max(y0, y1)), width, height), width, height)
    x, y, w, h = (round(v, 3) for v in bbox)
    return Label(
        bbox=(x, y, w, h), area=round(bbox[2] * bbox[3], 3), rle=None, polygon=_rectangle(bbox, width, height)
    )


def _region_rle(spec: InstanceSpec, width: int, height: int) -> dict[str, Any] | None:
    if spec.mask is not None:
        bitmap = _resize_nearest(spec.mask.decode(), width, height)
        encoded: dict[str, Any] = coco_mask.encode(np.asfortranarray(bitmap))
        return encoded
    if spec.polygon is not None:
        flat = [float(v) for x, y in spec.polygon for v in (x * width, y * height)]
        merged: dict[str, Any] = coco_mask.merge(coco_mask.frPyObjects([flat], height, width))
        return merged
    return None


def _resize_nearest(bitmap: Bitmap, width: int, height: int) -> Bitmap:
    mh, mw = bitmap.shape
    if (mh, mw) == (height, width):
        return bitmap
    rows = np.minimum(((np.arange(height) + 0.5) * mh / height).astype(np.int64), mh - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * mw / width).astype(np.int64), mw - 1)
    return np.ascontiguousarray(bitmap[rows[:, None], cols[None, :]])


def _bounds(points: tuple[tuple[float, float], ...] | None) -> tuple[float, float, float, float] | None:
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def _to_pixels(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return (x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height)


def _min_one_pixel(
    bbox: tuple[float, float, float, float], width: int, height: int
) -> tuple[float, float, float, float]:
    x, y, w, h = bbox
    if w < 1:
        x = min(max(0.0, x + w / 2 - 0.5), width - 1.0)
        w = 1.0
    if h < 1:
        y = min(max(0.0, y + h / 2 - 0.5), height - 1.0)
        h = 1.0
    return (x, y, w, h)


def _rectangle(bbox: tuple[float, float, float, float], width: int, height: int) -> Polygon:
    x, y, w, h = bbox
    x0, y0, x1, y1 = x / width, y / height, (x + w) / width, (y + h) / height
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


def _outline(spec: InstanceSpec, has_region: bool) -> Polygon | None:
    if not has_region:
        return None
    if spec.mask is not None:
        bitmap = spec.mask.decode()
        ring = trace_outer_boundary(largest_component(bitmap))
        if len(ring) < 3:
            return None
        mh, mw = bitmap.shape
        return tuple((x / mw, y / mh) for x, y in simplify_ring(ring, TRACE_TOLERANCE))
    return spec.polygon


# --- bitmap outlines ----------------------------------------------------------------------------


def largest_component(bitmap: Bitmap) -> Bitmap:
    """The largest 4-connected foreground part of a 0/1 bitmap (labelled by runs, union-find)."""
    height, width = bitmap.shape
    parent: list[int] = []
    runs: list[tuple[int, int, int]] = []  # (row, start, end)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    previous: list[int] = []
    for row in range(height):
        line = np.concatenate(([0], bitmap[row] != 0, [0])).astype(np.int8)
        edges = np.flatnonzero(np.diff(line))
        current = []
        for start, end in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
            index = len(runs)
            runs.append((row, start, end))
            parent.append(index)
            current.append(index)
        # Runs of consecutive rows that share a column touch (4-connectivity); both lists are sorted.
        i = j = 0
        while i < len(previous) and j < len(current):
            _, s1, e1 = runs[previous[i]]
            _, s2, e2 = runs[current[j]]
            if s1 < e2 and s2 < e1:
                a, b = find(previous[i]), find(current[j])
                if a != b:
                    parent[b] = a
            if e1 <= e2:
                i += 1
            else:
                j += 1
        previous = current
    result = np.zeros((height, width), dtype=np.uint8)
    if not runs:
        return result
    sizes: dict[int, int] = {}
    for index, (_, start, end) in enumerate(runs):
        root = find(index)
        sizes[root] = sizes.get(root, 0) + end - start
    best = max(sizes, key=lambda root: sizes[root])
    for index, (row, start, end) in enumerate(runs):
        if find(index) == best:
            result[row, start:end] = 1
    return result


# Moving right, down, left, up (y grows downwards); pixel (x, y) covers [x, x+1] x [y, y+1].
_STEPS: Final = ((1, 0), (0, 1), (-1, 0), (0, -1))
# For each direction, the pixel ahead on the right and ahead on the left of a corner (x, y).
_AHEAD_RIGHT: Final = ((0, 0), (-1, 0), (-1, -1), (0, -1))
_AHEAD_LEFT: Final = ((0, -1), (0, 0), (-1, 0), (-1, -1))


def trace_outer_boundary(bitmap: Bitmap) -> list[tuple[int, int]]:
    """The outer boundary of the 4-connected part holding the first foreground pixel (row-major),
    as pixel-corner vertices, clockwise on screen, one vertex per change of direction."""
    height, width = bitmap.shape
    found = np.flatnonzero(bitmap.ravel())
    if found.size == 0:
        return []
    y0, x0 = divmod(int(found[0]), width)

    def inside(x: int, y: int) -> bool:
        return 0 <= x < width and 0 <= y < height and bool(bitmap[y, x])

    # The top edge of the first pixel is on the boundary; walk it rightwards, inside on the right.
    x, y, d = x0, y0, 0
    ring: list[tuple[int, int]] = []
    while True:
        rx, ry = _AHEAD_RIGHT[d]
        lx, ly = _AHEAD_LEFT[d]
        if not inside(x + rx, y + ry):
            new = (d + 1) % 4  # turn right
        elif inside(x + lx, y + ly):
            new = (d + 3) % 4  # turn left
        else:
            new = d
        if new != d or not ring:
            ring.append((x, y))
        d = new
        x, y = x + _STEPS[d][0], y + _STEPS[d][1]
        if (x, y) == (x0, y0):
            # The start corner touches one inside pixel, so the walk passes it once: on its way back up.
            break
    return ring


def simplify_ring(ring: list[tuple[int, int]], tolerance: float) -> list[tuple[float, float]]:
    """Douglas-Peucker on a closed ring, split at vertex 0 and the vertex farthest from it."""
    points = np.asarray(ring, dtype=np.float64)
    if len(points) <= 4:
        return [(float(x), float(y)) for x, y in points]
    far = int(np.argmax(((points - points[0]) ** 2).sum(axis=1)))
    first = _douglas_peucker(points[: far + 1], tolerance)
    second = _douglas_peucker(np.vstack([points[far:], points[:1]]), tolerance)
    kept = np.vstack([first[:-1], second[:-1]])
    return [(float(x), float(y)) for x, y in kept]


def _douglas_peucker(points: npt.NDArray[np.float64], tolerance: float) -> npt.NDArray[np.float64]:
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        start, end = stack.pop()
        if end - start < 2:
            continue
        a, b = points[start], points[end]
        segment = points[start + 1 : end]
        ab = b - a
        length = float(np.hypot(*ab))
        if length == 0:
            distances = np.hypot(*(segment - a).T)
        else:
            distances = np.abs(ab[0] * (segment[:, 1] - a[1]) - ab[1] * (segment[:, 0] - a[0])) / length
        worst = int(np.argmax(distances))
        if distances[worst] > tolerance:
            middle = start + 1 + worst
            keep[middle] = True
            stack.extend(((start, middle), (middle, end)))
    return points[keep]
