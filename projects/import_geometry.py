"""One instance's location from a file, checked against its image and made to fit its scene.

Every importer (official JSON, COCO, labelme, our PNGs) goes through the same checks:
- Clipping (`clip_point`, `clip_box`, `clip_polygon`, `clip_polyline`): a shape reaching past the
  image is clipped to it, with a note unless only by a small tolerance (drawing slop); a point within
  the tolerance is moved onto the edge. A shape with no part on the image (a point past it, a box,
  polygon or scribble wholly outside) raises `GeometryError` rather than turning into something else.
- Masks are bounded by the scene, not the file: polygons are simplified first and rasterised at the
  canvas size (`union_of_polygons`), bitmaps larger than the canvas are resampled to it
  (`fit_mask`), and an RLE longer than `MAX_MASK_RLE_CHARS` is refused before it is decoded
  (`checked_rle`) or stored (`mask_from_bitmap`).
- `check_instance` is the last check of every importer: the instance's geometry is valid for a
  render request and its mask decodes to exactly its size.
Importers skip an instance that raises `GeometryError` and report it as a warning naming the
annotation; the file is refused only when nothing usable remains.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING, Final

from pycocotools import mask as coco_mask

from engine.request import (
    MAX_MASK_SIDE,
    MAX_POLYGON_POINTS,
    Box,
    InstanceSpec,
    MaskRLE,
    RequestValidationError,
    instance_label,
)
from projects.safe_input import image_side, number

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Coordinates this far past the image are drawing slop and are clipped to its edge; farther is an error.
EDGE_TOLERANCE_PX: Final = 2.0
EDGE_TOLERANCE_FRACTION: Final = 0.01
# A stored mask's RLE is at most this long (a detailed 4096x4096 outline takes some 100 KB; a zig-zag
# can take 30 MB). Each run takes at least one character, so a bitmap with more runs is refused unencoded.
MAX_MASK_RLE_CHARS: Final = 256 * 1024
# The polygons of one mask, simplified before they are drawn: the largest parts, all points together.
MAX_MASK_PARTS: Final = 256
MAX_MASK_POINTS: Final = 4 * MAX_POLYGON_POINTS

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
        _check_rle_length(len(counts), where, "runs")
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
    return checked_rle(mask_h, mask_w, counts, where)


def checked_rle(height: int, width: int, counts: str, where: str) -> MaskRLE:
    """A compressed RLE that is short enough to store and decodes to exactly `height` x `width`."""
    _check_rle_length(len(counts), where)
    try:
        rle = MaskRLE(height=height, width=width, counts=counts)
        rle.decode()  # verifies the runs cover the mask exactly
    except RequestValidationError as exc:
        raise GeometryError(f"{where}: {_mask_texts(exc)}") from exc
    return rle


def _check_rle_length(length: int, where: str, unit: str = "characters") -> None:
    if length > MAX_MASK_RLE_CHARS:
        raise GeometryError(
            f"{where}: the mask is too detailed to store ({length:,} {unit} of RLE; at most {MAX_MASK_RLE_CHARS:,})"
        )


def _mask_texts(exc: RequestValidationError) -> str:
    return "; ".join(p.message.removeprefix("mask: ") for p in exc.problems)


def rle_area(rle: MaskRLE) -> float:
    return float(coco_mask.area({"size": [rle.height, rle.width], "counts": rle.counts.encode("ascii")}))


# --- masks at the scene's size ----------------------------------------------------------------------


def mask_from_bitmap(bitmap: npt.ArrayLike, where: str) -> MaskRLE:
    """A bitmap as a mask, refused when its RLE would be too long to store (counted before encoding)."""
    import numpy as np

    flat = np.asarray(bitmap).ravel(order="F") != 0  # RLE runs are column-major
    runs = 1 + int(np.count_nonzero(flat[1:] != flat[:-1]))
    del flat
    _check_rle_length(runs, where, "runs")
    rle = MaskRLE.from_bitmap(bitmap)
    _check_rle_length(len(rle.counts), where)
    return rle


def fit_mask(rle: MaskRLE, canvas_w: int, canvas_h: int, where: str) -> MaskRLE:
    """A mask no larger than its canvas: a larger one is resampled to the canvas size (nearest pixel)."""
    if rle.width <= canvas_w and rle.height <= canvas_h:
        return rle
    try:
        bitmap = rle.decode()
    except RequestValidationError as exc:
        raise GeometryError(f"{where}: {_mask_texts(exc)}") from exc
    new_w, new_h = min(rle.width, canvas_w), min(rle.height, canvas_h)
    return mask_from_bitmap(bitmap[_centres(rle.height, new_h)][:, _centres(rle.width, new_w)], where)


def _centres(old: int, new: int) -> np.ndarray[tuple[int], np.dtype[np.intp]]:
    """The source pixel under each of `new` pixel centres along a side of `old` pixels."""
    import numpy as np

    return ((np.arange(new) + 0.5) * (old / new)).astype(np.intp)


def union_of_polygons(
    polygons: Sequence[Sequence[Point]], canvas_w: int, canvas_h: int, where: str, notes: list[str]
) -> MaskRLE:
    """Several normalised polygons drawn together into one mask the size of the canvas.

    The work is bounded by the canvas, whatever the file: at most MAX_MASK_PARTS parts (the largest)
    and MAX_MASK_POINTS points are drawn, drawn the way the renderer draws a polygon (PIL, at the
    canvas size), and the result is refused if its RLE would be too long."""
    import numpy as np
    from PIL import Image, ImageDraw

    parts = _simplified(polygons, where, notes)
    image = Image.new("L", (canvas_w, canvas_h), 0)
    draw = ImageDraw.Draw(image)
    for part in parts:
        draw.polygon([(x * canvas_w, y * canvas_h) for x, y in part], fill=1)
    return mask_from_bitmap(np.asarray(image), where)


def _simplified(polygons: Sequence[Sequence[Point]], where: str, notes: list[str]) -> list[tuple[Point, ...]]:
    parts = [tuple(part) for part in polygons]
    if len(parts) > MAX_MASK_PARTS:
        notes.append(f"{where}: {len(parts)} polygons; kept the {MAX_MASK_PARTS} largest")
        largest = sorted(range(len(parts)), key=lambda i: -polygon_area(parts[i]))[:MAX_MASK_PARTS]
        parts = [parts[i] for i in sorted(largest)]
    total = sum(len(part) for part in parts)
    if total > MAX_MASK_POINTS:
        notes.append(f"{where}: {total} points in all; thinned to about {MAX_MASK_POINTS} for the mask")
        parts = [thin(part, max(3, len(part) * MAX_MASK_POINTS // total)) for part in parts]
    return parts


# --- the last check of every importer ----------------------------------------------------------------


def check_instance(spec: InstanceSpec, where: str | None = None) -> None:
    """GeometryError naming the instance unless its geometry is fit for a render request: what
    `RenderRequest` validation checks (finite coordinates on the canvas, enough points, boxes with
    area, a well-formed mask), and a mask that decodes to exactly its size and is short enough to store.
    The caption is not geometry: an importer decides about it."""
    own_label = f"{instance_label(None, spec.caption if isinstance(spec.caption, str) else '')}: "
    label = where if where is not None else own_label.removesuffix(": ")
    problems = [p.message.removeprefix(own_label) for p in spec.problems() if not p.field.endswith(".caption")]
    if problems:
        raise GeometryError(f"{label}: {'; '.join(problems)}")
    if spec.mask is not None:
        checked_rle(spec.mask.height, spec.mask.width, spec.mask.counts, f"{label} mask")


# --- clipping to the image: clip what overlaps, refuse what has no part on it ----------------------


def _inside(x: float, y: float, width: int, height: int, *, slack: bool = True) -> bool:
    """On the image, or (with `slack`) within the tolerance of it: drawing slop, clipped without a note."""
    tol_x, tol_y = (edge_tolerance(width), edge_tolerance(height)) if slack else (0.0, 0.0)
    return -tol_x <= x <= width + tol_x and -tol_y <= y <= height + tol_y


def _normalised(points: Sequence[Point], width: int, height: int) -> tuple[Point, ...]:
    return tuple((min(1.0, max(0.0, x / width)), min(1.0, max(0.0, y / height))) for x, y in points)


def _clipped_note(where: str, width: int, height: int) -> str:
    return f"{where} reaches outside the {width}x{height} image; clipped to it"


def clip_point(x: float, y: float, width: int, height: int, where: str) -> Point:
    """A pixel point as a normalised one; a point past the image (beyond the tolerance) is refused."""
    (point,) = normalise_points([(x, y)], width, height, where)
    return point


def clip_box(
    box: tuple[float, float, float, float], width: int, height: int, where: str, notes: list[str]
) -> Box | None:
    """A pixel box (x0, y0, x1, y1) clipped to the image, normalised; None when the box itself has no area
    (a caller's own choice what that means). A box with area but none of it on the image is refused."""
    x0, y0, x1, y1 = min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])
    if not (x1 > x0 and y1 > y0):
        return None
    (cx0, cy0), (cx1, cy1) = _normalised([(x0, y0), (x1, y1)], width, height)
    if not (cx1 > cx0 and cy1 > cy0):
        raise GeometryError(f"{where} lies outside the {width}x{height} image")
    if not (_inside(x0, y0, width, height) and _inside(x1, y1, width, height)):
        notes.append(_clipped_note(where, width, height))
    return (cx0, cy0, cx1, cy1)


def clip_polygon(points: Sequence[Point], width: int, height: int, where: str, notes: list[str]) -> tuple[Point, ...]:
    """A pixel polygon as its intersection with the image, normalised (Sutherland-Hodgman: the image is
    convex), with a note unless it reached past the image only by the tolerance; a polygon with no
    area on the image is refused."""
    if all(_inside(x, y, width, height, slack=False) for x, y in points):
        return _normalised(points, width, height)
    clipped = list(points)
    for axis, limit, keep_below in (
        (0, 0.0, False),
        (0, float(width), True),
        (1, 0.0, False),
        (1, float(height), True),
    ):
        clipped = _clip_half_plane(clipped, axis, limit, keep_below)
    if len(clipped) < 3 or polygon_area(clipped) <= 0:
        raise GeometryError(f"{where} lies outside the {width}x{height} image")
    if not all(_inside(x, y, width, height) for x, y in points):
        notes.append(_clipped_note(where, width, height))
    return _normalised(clipped, width, height)


def _clip_half_plane(points: list[Point], axis: int, limit: float, keep_below: bool) -> list[Point]:
    def inside(p: Point) -> bool:
        return p[axis] <= limit if keep_below else p[axis] >= limit

    def crossing(p: Point, q: Point) -> Point:
        t = (limit - p[axis]) / (q[axis] - p[axis])
        other = p[1 - axis] + t * (q[1 - axis] - p[1 - axis])
        return (limit, other) if axis == 0 else (other, limit)

    result: list[Point] = []
    for i, current in enumerate(points):
        previous = points[i - 1]
        if inside(current):
            if not inside(previous):
                result.append(crossing(previous, current))
            result.append(current)
        elif inside(previous):
            result.append(crossing(previous, current))
    return result


def clip_polyline(points: Sequence[Point], width: int, height: int, where: str, notes: list[str]) -> tuple[Point, ...]:
    """A pixel scribble clipped to the image, normalised: each segment is cut at the edge (Liang-Barsky)
    and the pieces are kept in order. A scribble with no length on the image is refused."""
    if all(_inside(x, y, width, height, slack=False) for x, y in points):
        return _normalised(points, width, height)
    kept: list[Point] = []
    for start, end in pairwise(points):
        piece = _clip_segment(start, end, width, height)
        if piece is None:
            continue
        for point in piece:
            if not kept or kept[-1] != point:
                kept.append(point)
    if len(kept) < 2:
        raise GeometryError(f"{where} lies outside the {width}x{height} image")
    if not all(_inside(x, y, width, height) for x, y in points):
        notes.append(_clipped_note(where, width, height))
    return _normalised(kept, width, height)


def _clip_segment(start: Point, end: Point, width: int, height: int) -> tuple[Point, Point] | None:
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0), (dx, width - x0), (-dy, y0), (dy, height - y0)):
        if p == 0:
            if q < 0:
                return None
        elif p < 0:
            t0 = max(t0, q / p)
        else:
            t1 = min(t1, q / p)
    if t0 >= t1:
        return None
    return (x0 + t0 * dx, y0 + t0 * dy), (x0 + t1 * dx, y0 + t1 * dy)
