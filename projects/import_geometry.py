"""One instance's location from a file, checked against its image.

`normalise_points` and `coco_rle` check a location against its image: coordinates past the image by
more than a small tolerance, an RLE whose size is not the image's, or counts that do not decode raise
`GeometryError`. Importers skip that instance and report it as a warning naming the annotation; the
file is refused only when nothing usable remains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from pycocotools import mask as coco_mask

from engine.request import MAX_MASK_SIDE, MaskRLE, RequestValidationError
from projects.safe_input import image_side, number

# Coordinates this far past the image are drawing slop and are clipped to its edge; farther is an error.
EDGE_TOLERANCE_PX: Final = 2.0
EDGE_TOLERANCE_FRACTION: Final = 0.01

Point = tuple[float, float]


class GeometryError(ValueError):
    """One instance's location is malformed or does not fit its image; it is skipped with a warning."""


def pixel_pairs(value: object, where: str) -> list[Point]:
    """Points given as [[x, y], ...] (labelme) in pixels."""
    if not isinstance(value, list):
        raise GeometryError(f"{where} must be a list of [x, y] points")
    points: list[Point] = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise GeometryError(f"{where} must be a list of [x, y] points")
        x, y = number(item[0]), number(item[1])
        if x is None or y is None:
            raise GeometryError(f"{where} has a coordinate that is not a finite number")
        points.append((x, y))
    return points


def flat_pairs(value: object, where: str) -> list[Point]:
    """Points given as a flat [x1, y1, x2, y2, ...] list (COCO polygons) in pixels."""
    if not isinstance(value, list) or len(value) % 2:
        raise GeometryError(f"{where} must be a flat list of x, y coordinates")
    coords: list[float] = []
    for item in value:
        coord = number(item)
        if coord is None:
            raise GeometryError(f"{where} has a coordinate that is not a finite number")
        coords.append(coord)
    return list(zip(coords[0::2], coords[1::2], strict=True))


def edge_tolerance(side: int) -> float:
    return max(EDGE_TOLERANCE_PX, EDGE_TOLERANCE_FRACTION * side)


def normalise_points(points: Sequence[Point], width: int, height: int, where: str) -> tuple[Point, ...]:
    """Pixel points as normalised [0, 1] coordinates; points within the tolerance of the image are
    clipped to its edge, points farther out raise GeometryError."""
    tol_x, tol_y = edge_tolerance(width), edge_tolerance(height)
    result: list[Point] = []
    for x, y in points:
        if not (-tol_x <= x <= width + tol_x and -tol_y <= y <= height + tol_y):
            raise GeometryError(f"{where}: point ({x:g}, {y:g}) lies outside the {width}x{height} image")
        result.append((min(1.0, max(0.0, x / width)), min(1.0, max(0.0, y / height))))
    return tuple(result)


def thin(points: Sequence[Point], maximum: int) -> tuple[Point, ...]:
    """At most `maximum` points, evenly spaced along the list, keeping the first and the last."""
    if len(points) <= maximum:
        return tuple(points)
    step = (len(points) - 1) / (maximum - 1)
    return tuple(points[round(i * step)] for i in range(maximum))


def polygon_area(points: Sequence[Point]) -> float:
    """Shoelace area, in the points' own units."""
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2.0


def coco_rle(value: object, width: int, height: int, where: str) -> MaskRLE:
    """A COCO RLE segmentation (compressed string or uncompressed run lengths) covering the whole
    `width` x `height` image, verified to decode; GeometryError otherwise."""
    if not isinstance(value, dict) or "size" not in value or "counts" not in value:
        raise GeometryError(f"{where} must be a COCO RLE object with 'size' and 'counts'")
    size = value["size"]
    sides = [image_side(v) for v in size] if isinstance(size, list) and len(size) == 2 else [None]
    if any(side is None for side in sides):
        raise GeometryError(f"{where}: size must be [height, width] in whole pixels")
    mask_h, mask_w = (int(side or 0) for side in sides)
    if (mask_h, mask_w) != (height, width):
        raise GeometryError(f"{where}: RLE size {mask_h}x{mask_w} does not match the {height}x{width} image")
    if max(mask_h, mask_w) > MAX_MASK_SIDE:
        raise GeometryError(f"{where}: masks larger than {MAX_MASK_SIDE} pixels a side are not supported")
    counts = value["counts"]
    if isinstance(counts, list):
        # Uncompressed RLE (crowd annotations): run lengths that must cover the mask exactly.
        pixels = mask_h * mask_w
        if (
            len(counts) > pixels + 1
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
            or sum(counts) != pixels
        ):
            raise GeometryError(f"{where}: run lengths do not add up to a {mask_h}x{mask_w} mask")
        compressed = coco_mask.frPyObjects({"size": [mask_h, mask_w], "counts": counts}, mask_h, mask_w)
        counts = compressed["counts"].decode("ascii")
    if not isinstance(counts, str):
        raise GeometryError(f"{where}: counts must be an RLE string or a list of run lengths")
    try:
        rle = MaskRLE(height=mask_h, width=mask_w, counts=counts)
        rle.decode()  # verifies the runs cover the mask exactly
    except RequestValidationError as exc:
        texts = "; ".join(p.message.removeprefix("mask: ") for p in exc.problems)
        raise GeometryError(f"{where}: {texts}") from exc
    return rle


def rle_area(rle: MaskRLE) -> float:
    return float(coco_mask.area({"size": [rle.height, rle.width], "counts": rle.counts.encode("ascii")}))


def union_of_polygons(polygons: Sequence[Sequence[Point]], width: int, height: int) -> MaskRLE:
    """Several pixel polygons rasterised together into one mask the size of the image."""
    flat = [[v for x, y in polygon for v in (x, y)] for polygon in polygons]
    merged = coco_mask.merge(coco_mask.frPyObjects(flat, height, width))
    return MaskRLE(height=height, width=width, counts=merged["counts"].decode("ascii"))
