"""Reading rendered shape scenes back: where each requested instance ended up, and how well it was placed.

No learned detector is needed in the synthetic world: every instance of a scene has its own colour, so
the instance is the largest connected blob of pixels nearest to that colour. Its shape is told apart
without regard to rotation: a star is far from convex; of the convex shapes, the share of the
circumscribed circle they fill is about 1 for a circle, 2/pi for a square and 0.41 for a triangle.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.demo.world import BACKGROUNDS, COLOURS
from engine.geometry import bitmap_bounding_box

BoolMap = npt.NDArray[np.bool_]
Box = tuple[float, float, float, float]

_NAMES: Final = list(COLOURS) + [f"background:{name}" for name in BACKGROUNDS]
_PALETTE: Final = np.array(list(COLOURS.values()) + list(BACKGROUNDS.values()), dtype=np.float32)
# A pixel farther than this (RGB distance) from every palette colour belongs to nothing.
MAX_COLOUR_DISTANCE: Final = 90.0


@dataclass(frozen=True)
class Blob:
    mask: BoolMap

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def box(self) -> Box:
        box = bitmap_bounding_box(self.mask)
        if box is None:
            raise ValueError("an empty blob has no box")
        return box

    def contains(self, point: tuple[float, float]) -> bool:
        height, width = self.mask.shape
        x = min(width - 1, max(0, int(point[0] * width)))
        y = min(height - 1, max(0, int(point[1] * height)))
        return bool(self.mask[y, x])


def colour_labels(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """Per pixel: the index of the nearest shape colour (0..5), or -1 for background or anything else."""
    pixels = image.astype(np.float32)[..., None, :]
    distances = np.linalg.norm(pixels - _PALETTE, axis=-1)
    nearest = distances.argmin(axis=-1)
    labels = np.where(nearest < len(COLOURS), nearest, -1)
    labels[distances.min(axis=-1) > MAX_COLOUR_DISTANCE] = -1
    return labels


def find_blob(image: npt.NDArray[np.uint8], colour: str, labels: npt.NDArray[np.int64] | None = None) -> Blob | None:
    """The largest 4-connected region of `colour`, or None if the colour is absent."""
    labels = colour_labels(image) if labels is None else labels
    wanted = labels == list(COLOURS).index(colour)
    best: BoolMap | None = None
    seen = np.zeros_like(wanted)
    height, width = wanted.shape
    for y0, x0 in zip(*np.nonzero(wanted), strict=True):
        if seen[y0, x0]:
            continue
        region = np.zeros_like(wanted)
        queue = deque([(int(y0), int(x0))])
        seen[y0, x0] = True
        while queue:
            y, x = queue.popleft()
            region[y, x] = True
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and wanted[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        if best is None or region.sum() > best.sum():
            best = region
    return None if best is None else Blob(best)


def classify_shape(blob: Blob) -> str:
    ys, xs = np.nonzero(blob.mask)
    points = np.stack([xs + 0.5, ys + 0.5], axis=1)
    hull_area = _convex_hull_area(_pixel_corners(xs, ys))
    solidity = blob.area / hull_area if hull_area > 0 else 1.0
    if solidity < 0.8:
        return "star"
    centre = points.mean(axis=0)
    reach = np.linalg.norm(points - centre, axis=1).max() + 0.5  # to the pixel's outer edge
    fill = blob.area / (math.pi * reach * reach)
    if fill > 0.8:
        return "circle"
    return "square" if fill > 0.5 else "triangle"


def mask_iou(a: BoolMap, b: BoolMap) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def scribble_hit_rate(blob: Blob, scribble: tuple[tuple[float, float], ...]) -> float:
    return sum(blob.contains(p) for p in scribble) / len(scribble)


def edit_locality(
    before: npt.NDArray[np.uint8], after: npt.NDArray[np.uint8], boxes: list[Box]
) -> tuple[float, float]:
    """Mean absolute pixel change (0..255) outside all `boxes`, and inside them: a local edit has a small first."""
    height, width = before.shape[:2]
    inside = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        inside[int(y0 * height) : math.ceil(y1 * height), int(x0 * width) : math.ceil(x1 * width)] = True
    change = np.abs(before.astype(np.float32) - after.astype(np.float32)).mean(axis=-1)
    outside_change = float(change[~inside].mean()) if (~inside).any() else 0.0
    inside_change = float(change[inside].mean()) if inside.any() else 0.0
    return outside_change, inside_change


def _pixel_corners(xs: npt.NDArray[np.int64], ys: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    offsets = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    return (np.stack([xs, ys], axis=1)[:, None, :] + offsets).reshape(-1, 2)


def _convex_hull_area(points: npt.NDArray[np.float64]) -> float:
    """Area of the convex hull (Andrew's monotone chain, then the shoelace formula)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return 0.0

    def cross(o: tuple[float, ...], a: tuple[float, ...], b: tuple[float, ...]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, ...]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, ...]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    return 0.5 * abs(sum(hull[i][0] * hull[i - 1][1] - hull[i - 1][0] * hull[i][1] for i in range(len(hull))))
