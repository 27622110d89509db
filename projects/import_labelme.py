"""labelme annotation files as scenes: one scene per file, one instance per shape.

Shapes become instances captioned with their label: `rectangle` → box; `point` → point; `line` and
`linestrip` → scribble; `polygon` (also a shape without `shape_type`) → mask instance with the
polygon as its outline and its bounds as its box; `circle` (centre and a point on the rim) → a
32-point polygon. Shapes reaching past the image are clipped to it, with a warning. `mask` shapes
(labelme 5.3+) are skipped with a warning, and `group_id` and `flags` are ignored. `imageData` is
never decoded and `imagePath` is never opened: the size comes from `imageWidth` and `imageHeight`.

A shape that cannot be used (malformed, wholly outside the image) is skipped with a warning naming
it; a file with no usable shape is refused. At most `max_instances` shapes: the largest are kept,
with a warning.
The scene caption is `caption` when given, else the template with `{labels}` replaced by the labels
counted in plain English ("a photo of two cats and a dog").
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

from engine.request import MAX_INSTANCES, MAX_POLYGON_POINTS, MAX_SCRIBBLE_POINTS, InstanceKind, InstanceSpec
from projects.errors import LayoutFormatError
from projects.import_coco import caption_from_template, fit_caption
from projects.import_geometry import (
    GeometryError,
    check_instance,
    clip_box,
    clip_point,
    clip_polygon,
    clip_polyline,
    edge_tolerance,
    pixel_pairs,
    polygon_area,
    thin,
)
from projects.official_json import ImportedLayout
from projects.safe_input import (
    check_text,
    clean_text,
    fit_canvas,
    image_side,
    read_json,
    scene_name_from,
    shown,
)
from projects.scenes import SceneLayout

DEFAULT_LABELME_TEMPLATE: Final = "a photo of {labels}"
MAX_LABELME_BYTES: Final = 256 * 1024 * 1024  # imageData can make a labelme file large
CIRCLE_POINTS: Final = 32

Point = tuple[float, float]


def read_labelme(
    path: str | Path,
    *,
    caption: str | None = None,
    caption_template: str = DEFAULT_LABELME_TEMPLATE,
    max_instances: int = MAX_INSTANCES,
    max_bytes: int = MAX_LABELME_BYTES,
) -> ImportedLayout:
    """Read one labelme JSON file into a scene named after the file."""
    path = Path(path)
    data = read_json(path, max_bytes=max_bytes)
    name = scene_name_from(path, "labelme scene")
    return parse_labelme(
        data, shown(str(path)), name, caption=caption, caption_template=caption_template, max_instances=max_instances
    )


def parse_labelme(
    data: Any,
    source: str,
    name: str,
    *,
    caption: str | None = None,
    caption_template: str = DEFAULT_LABELME_TEMPLATE,
    max_instances: int = MAX_INSTANCES,
) -> ImportedLayout:
    """Parsed labelme data as a scene; raises LayoutFormatError naming `source` and the field."""
    if not 1 <= max_instances <= MAX_INSTANCES:
        raise ValueError(f"max_instances must be from 1 to {MAX_INSTANCES}, got {max_instances}")
    for where, text in (("the caption", caption), ("the caption template", caption_template)):
        if text is not None:
            check_text(text, source, where)  # from the command line, say
    if not isinstance(data, dict):
        raise LayoutFormatError(source, "the top level must be an object (a labelme file)")
    width, height = image_side(data.get("imageWidth")), image_side(data.get("imageHeight"))
    if width is None or height is None:
        raise LayoutFormatError(source, "'imageWidth' and 'imageHeight' must be whole numbers of pixels")
    shapes = data.get("shapes")
    if not isinstance(shapes, list):
        raise LayoutFormatError(source, "'shapes' is missing or not a list; this is not a labelme file")
    if not shapes:
        raise LayoutFormatError(source, "'shapes' is empty; there is nothing to import")

    warnings: list[str] = []
    kept: list[tuple[float, InstanceSpec]] = []
    for index, shape in enumerate(shapes):
        try:
            kept.append(_shape(shape, index, width, height, warnings, source))
        except GeometryError as exc:
            warnings.append(f"{exc}; skipped")
    if not kept:
        raise LayoutFormatError(source, f"no shape could be imported ({warnings[0]})")
    if len(kept) > max_instances:
        warnings.append(f"{len(kept)} shapes; kept the {max_instances} largest (at most {MAX_INSTANCES} fit a scene)")
        largest = sorted(range(len(kept)), key=lambda i: -kept[i][0])[:max_instances]
        kept = [kept[i] for i in sorted(largest)]
    specs = tuple(spec for _area, spec in kept)

    scene_caption = (
        caption if caption is not None else caption_from_template(caption_template, (s.caption for s in specs))
    )
    canvas_w, canvas_h, note = fit_canvas(width, height)
    if note:
        warnings.append(note)
    layout = SceneLayout(
        name=name,
        caption=fit_caption(scene_caption, warnings),
        width=canvas_w,
        height=canvas_h,
        instances=specs,
    )
    return ImportedLayout(layout, tuple(warnings))


def _shape(
    shape: Any, index: int, width: int, height: int, warnings: list[str], source: str
) -> tuple[float, InstanceSpec]:
    """One shape as (area in pixels, instance); GeometryError when it cannot be used, LayoutFormatError
    (refusing the file) when its label is text no project can store."""
    where = f"shape {index + 1}"
    if not isinstance(shape, dict):
        raise GeometryError(f"{where} is not an object")
    label = clean_text(shape.get("label"), source, f"{where} label")
    if label is None:
        raise GeometryError(f"{where} has no label")
    where = f"shape {index + 1} ({label[:40]!r})"
    shape_type = shape.get("shape_type") or "polygon"  # labelme's own default
    points = pixel_pairs(shape.get("points"), f"{where} points")

    def count(minimum: int, maximum: int | None = None) -> None:
        if len(points) < minimum or (maximum is not None and len(points) > maximum):
            wanted = f"{minimum}" if maximum == minimum else f"at least {minimum}"
            raise GeometryError(f"{where}: a {shape_type} needs {wanted} points, got {len(points)}")

    if shape_type == "rectangle":
        count(2, 2)
        (ax, ay), (bx, by) = points
        box = clip_box((ax, ay, bx, by), width, height, where, warnings)
        if box is None:
            raise GeometryError(f"{where}: the rectangle has no area")
        spec = InstanceSpec(label, InstanceKind.BOX, box=box)
        area = (box[2] - box[0]) * width * (box[3] - box[1]) * height
    elif shape_type == "point":
        count(1, 1)
        spec, area = InstanceSpec(label, InstanceKind.POINT, point=clip_point(*points[0], width, height, where)), 0.0
    elif shape_type in ("line", "linestrip"):
        count(2)
        scribble = clip_polyline(points, width, height, where, warnings)
        if len(scribble) > MAX_SCRIBBLE_POINTS:
            warnings.append(f"{where}: {len(scribble)} points; thinned to {MAX_SCRIBBLE_POINTS}")
            scribble = thin(scribble, MAX_SCRIBBLE_POINTS)
        spec, area = InstanceSpec(label, InstanceKind.SCRIBBLE, scribble=scribble), 0.0
    elif shape_type == "polygon":
        count(3)
        outline = clip_polygon(points, width, height, where, warnings)
        spec, area = _polygon(label, outline, width, height, where, warnings)
    elif shape_type == "circle":
        count(2, 2)
        (cx, cy), (rx, ry) = points
        radius = math.hypot(rx - cx, ry - cy)
        if radius > 2 * (max(width, height) + edge_tolerance(max(width, height))):
            raise GeometryError(f"{where}: the circle's radius {radius:g} is far larger than the image")
        rim = [
            (
                cx + radius * math.cos(2 * math.pi * i / CIRCLE_POINTS),
                cy + radius * math.sin(2 * math.pi * i / CIRCLE_POINTS),
            )
            for i in range(CIRCLE_POINTS)
        ]
        spec, area = _polygon(label, clip_polygon(rim, width, height, where, warnings), width, height, where, warnings)
    elif shape_type == "mask":
        raise GeometryError(f"{where}: labelme mask shapes are not imported (draw a polygon instead)")
    else:
        raise GeometryError(f"{where}: unknown shape_type {shape_type!r:.40}")
    check_instance(spec, where)
    return area, spec


def _polygon(
    label: str, outline: tuple[Point, ...], width: int, height: int, where: str, warnings: list[str]
) -> tuple[InstanceSpec, float]:
    area = polygon_area([(x * width, y * height) for x, y in outline])
    if area <= 0:
        raise GeometryError(f"{where}: the polygon has no area")
    if len(outline) > MAX_POLYGON_POINTS:
        warnings.append(f"{where}: {len(outline)} points; thinned to {MAX_POLYGON_POINTS}")
        outline = thin(outline, MAX_POLYGON_POINTS)
    xs, ys = [x for x, _ in outline], [y for _, y in outline]
    box = (min(xs), min(ys), max(xs), max(ys))
    return InstanceSpec(label, InstanceKind.MASK, box=box, polygon=outline), area
