"""The official InstanceDiffusion scene JSON: read it into scenes and write scenes back out.

Format (the official repository's `demos/*.json`): top-level `caption`, `width`, `height`, `annos`;
each anno has `caption`, and a location: `bbox` as pixel [x, y, w, h], `mask` as COCO RLE (or `[]`),
`point` as pixel [x, y], `scribble` as pixel points. We also write and read `polygon` (pixel [x, y]
pairs), which official readers ignore, so polygons survive a round trip.

Reading trusts nothing: every malformed input becomes one `LayoutFormatError` naming the file and
the problem. Fixes that keep the file's intent (a box reaching past the canvas, clipped to it; a
canvas that is not a multiple of 8) are applied and reported as warnings. An instance with no part
on the canvas is skipped with a warning naming it (the file is refused only when none is left);
geometry goes through the checks every importer shares (`projects.import_geometry`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pycocotools import mask as coco_mask

from common.atomic_files import write_bytes_atomic
from engine.request import (
    CANVAS_MULTIPLE,
    MAX_CANVAS,
    MAX_INSTANCES,
    MAX_POLYGON_POINTS,
    MAX_SCRIBBLE_POINTS,
    MIN_CANVAS,
    InstanceKind,
    InstanceSpec,
    MaskRLE,
)
from engine.validation import MAX_MAGNITUDE, brief
from projects.errors import LayoutFormatError
from projects.import_geometry import (
    GeometryError,
    check_instance,
    checked_rle,
    clip_box,
    clip_point,
    clip_polygon,
    clip_polyline,
    fit_mask,
    thin,
)
from projects.safe_input import check_text, number, parse_json, read_json, scene_name_from, shown
from projects.scenes import SceneLayout

MAX_FILE_BYTES: Final = 32 * 1024 * 1024
MAX_SOURCE_SIDE: Final = 16384
MAX_POINTS: Final = 4096


@dataclass(frozen=True)
class ImportedLayout:
    layout: SceneLayout
    warnings: tuple[str, ...] = ()


def read_official_json(path: str | Path) -> ImportedLayout:
    """Read one official scene file into a layout named after the file."""
    data = read_json(path, max_bytes=MAX_FILE_BYTES)  # the importers' one bounded reader
    return parse_official_layout(data, shown(str(path)), name=scene_name_from(path, "scene"))


def parse_official_bytes(raw: bytes, source: str, name: str) -> ImportedLayout:
    if len(raw) > MAX_FILE_BYTES:
        raise LayoutFormatError(source, f"file is {len(raw):,} bytes; layout files are at most {MAX_FILE_BYTES:,}")
    return parse_official_layout(parse_json(raw, source), source, name)


def parse_official_layout(data: Any, source: str, name: str) -> ImportedLayout:
    """Turn parsed official JSON into a layout; raises LayoutFormatError on anything malformed."""
    return _LayoutParser(source).parse(data, name)


class _LayoutParser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.warnings: list[str] = []

    def error(self, problem: str) -> LayoutFormatError:
        return LayoutFormatError(self.source, problem)

    def parse(self, data: Any, name: str) -> ImportedLayout:
        if not isinstance(data, dict):
            raise self.error(f"the top level must be an object, got {_type_name(data)}")
        for key in ("caption", "width", "height", "annos"):
            if key not in data:
                raise self.error(f"missing key {key!r}")
        caption = self.text(data["caption"], "caption")
        width = self.side(data["width"], "width")
        height = self.side(data["height"], "height")
        annos = data["annos"]
        if not isinstance(annos, list):
            raise self.error(f"'annos' must be a list, got {_type_name(annos)}")
        if len(annos) > MAX_INSTANCES:
            raise self.error(f"{len(annos)} instances; InstanceDiffusion takes at most {MAX_INSTANCES}")
        canvas = (self.canvas_side(width, "width"), self.canvas_side(height, "height"))
        instances: list[InstanceSpec] = []
        for index, anno in enumerate(annos):
            try:
                instances.append(self.instance(anno, index, width, height, canvas))
            except GeometryError as exc:  # wholly off the canvas: skipped, naming it
                self.warnings.append(f"{exc}; skipped")
        if annos and not instances:
            raise self.error(f"no instance could be imported ({self.warnings[-1]})")
        layout = SceneLayout(
            name=name or "scene", caption=caption, width=canvas[0], height=canvas[1], instances=tuple(instances)
        )
        return ImportedLayout(layout, tuple(self.warnings))

    # --- fields ----------------------------------------------------------------------------------

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str):
            raise self.error(f"{where} must be text, got {_type_name(value)}")
        return check_text(value, self.source, where)

    def number(self, value: Any, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"{where} must be a number, got {_type_name(value)}")
        checked = number(value)  # the importers' one number check
        if checked is None:
            raise self.error(
                f"{where} must be finite, from -{MAX_MAGNITUDE:g} to {MAX_MAGNITUDE:g}, got {brief(value)}"
            )
        return checked

    def side(self, value: Any, where: str) -> int:
        side = self.number(value, where)
        if side != int(side) or not 1 <= side <= MAX_SOURCE_SIDE:
            raise self.error(
                f"{where} must be a whole number of pixels from 1 to {MAX_SOURCE_SIDE}, got {brief(value)}"
            )
        return int(side)

    def canvas_side(self, pixels: int, where: str) -> int:
        """The scene's canvas side: the file's, or the nearest size the renderer accepts."""
        snapped = min(MAX_CANVAS, max(MIN_CANVAS, round(pixels / CANVAS_MULTIPLE) * CANVAS_MULTIPLE))
        if snapped != pixels:
            self.warnings.append(f"canvas {where} {pixels} is not a multiple of {CANVAS_MULTIPLE}; using {snapped}")
        return snapped

    def numbers(self, value: Any, where: str, length: int) -> list[float]:
        if not isinstance(value, list) or len(value) != length:
            raise self.error(f"{where} must be a list of {length} numbers")
        return [self.number(v, where) for v in value]

    def pixel_points(self, value: Any, where: str) -> list[tuple[float, float]]:
        """Points as [[x, y], ...] or as a flat [x1, y1, x2, y2, ...] list."""
        if not isinstance(value, list):
            raise self.error(f"{where} must be a list of points, got {_type_name(value)}")
        if len(value) > 2 * MAX_POINTS:
            raise self.error(f"{where} has too many points (at most {MAX_POINTS})")
        if value and all(isinstance(v, list) for v in value):
            pairs = [self.numbers(v, where, 2) for v in value]
            return [(x, y) for x, y in pairs]
        flat = [self.number(v, where) for v in value]
        if len(flat) % 2:
            raise self.error(f"{where} has an odd number of coordinates")
        return list(zip(flat[0::2], flat[1::2], strict=True))

    def mask(self, value: Any, where: str) -> MaskRLE:
        if not isinstance(value, dict) or "size" not in value or "counts" not in value:
            raise self.error(f"{where} must be a COCO RLE object with 'size' and 'counts'")
        size = value["size"]
        if not isinstance(size, list) or len(size) != 2:
            raise self.error(f"{where}.size must be [height, width]")
        mask_h, mask_w = (self.side(v, f"{where}.size") for v in size)
        counts = value["counts"]
        if isinstance(counts, list):
            # Uncompressed RLE (a list of run lengths): let pycocotools compress it.
            runs = [self.number(c, f"{where}.counts") for c in counts]
            if any(r < 0 or r != int(r) for r in runs) or sum(runs) != mask_h * mask_w:
                raise self.error(f"{where}: run lengths do not add up to a {mask_h}x{mask_w} mask")
            compressed = coco_mask.frPyObjects(
                {"size": [mask_h, mask_w], "counts": [int(r) for r in runs]}, mask_h, mask_w
            )
            counts = compressed["counts"].decode("ascii")
        if not isinstance(counts, str):
            raise self.error(f"{where}.counts must be an RLE string or a list of run lengths")
        try:
            return checked_rle(mask_h, mask_w, counts, where)  # short enough, and decodes
        except GeometryError as exc:
            raise self.error(str(exc)) from exc

    # --- one instance ------------------------------------------------------------------------

    def instance(self, anno: Any, index: int, width: int, height: int, canvas: tuple[int, int]) -> InstanceSpec:
        """One anno as an instance: LayoutFormatError (refusing the file) when it is malformed,
        GeometryError (skipping it) when it has no part on the canvas; what reaches past it is clipped."""
        where = f"instance {index + 1}"
        if not isinstance(anno, dict):
            raise self.error(f"{where} must be an object, got {_type_name(anno)}")
        if "caption" not in anno:
            raise self.error(f"{where} has no 'caption'")
        caption = self.text(anno["caption"], f"{where} caption")
        if not caption.strip():
            self.warnings.append(f"{where} has an empty caption")
        where = f"instance {index + 1} ({caption[:40]!r})"

        box = None
        degenerate_centre = None
        if _present(anno.get("bbox")):
            x, y, w, h = self.numbers(anno["bbox"], f"{where} bbox", 4)
            if w < 0 or h < 0:
                raise self.error(f"{where} bbox has a negative width or height")
            box = clip_box((x, y, x + w, y + h), width, height, f"{where} bbox", self.warnings)
            if box is None:
                degenerate_centre = clip_point(x + w / 2, y + h / 2, width, height, f"{where} bbox")

        point = None
        if _present(anno.get("point")):
            px, py = self.numbers(anno["point"], f"{where} point", 2)
            point = clip_point(px, py, width, height, f"{where} point")

        scribble = polygon = None
        if _present(anno.get("scribble")):
            pts = self.pixel_points(anno["scribble"], f"{where} scribble")
            if len(pts) < 2:
                raise self.error(f"{where} scribble needs at least 2 points")
            scribble = self.thinned(
                clip_polyline(pts, width, height, f"{where} scribble", self.warnings), MAX_SCRIBBLE_POINTS, where
            )
        if _present(anno.get("polygon")):
            pts = self.pixel_points(anno["polygon"], f"{where} polygon")
            if len(pts) < 3:
                raise self.error(f"{where} polygon needs at least 3 points")
            polygon = self.thinned(
                clip_polygon(pts, width, height, f"{where} polygon", self.warnings), MAX_POLYGON_POINTS, where
            )

        mask = None
        if _present(anno.get("mask")):
            mask = fit_mask(self.mask(anno["mask"], f"{where} mask"), *canvas, f"{where} mask")

        if mask is not None or polygon is not None:
            kind = InstanceKind.MASK
        elif scribble is not None:
            kind = InstanceKind.SCRIBBLE
        elif box is not None:
            kind = InstanceKind.BOX
        elif point is not None:
            kind = InstanceKind.POINT
        elif degenerate_centre is not None:
            # The official code feeds such a box as-is; the nearest honest location is its point.
            kind, point = InstanceKind.POINT, degenerate_centre
            self.warnings.append(f"{where} bbox has no area; imported as a point at its position")
        else:
            raise self.error(f"{where} has no location (bbox, mask, point or scribble)")
        spec = InstanceSpec(caption, kind, box=box, point=point, scribble=scribble, polygon=polygon, mask=mask)
        check_instance(spec, where)  # the check every importer ends with
        return spec

    def thinned(
        self, points: tuple[tuple[float, float], ...], maximum: int, where: str
    ) -> tuple[tuple[float, float], ...]:
        if len(points) <= maximum:
            return points
        self.warnings.append(f"{where}: {len(points)} points; thinned to {maximum}")
        return thin(points, maximum)


# --- writing ----------------------------------------------------------------------------------


def to_official_dict(layout: SceneLayout) -> dict[str, Any]:
    """A layout in the official format, in pixels of the scene's canvas."""
    width, height = layout.width, layout.height
    return {
        "caption": layout.caption,
        "width": width,
        "height": height,
        "annos": [_anno(spec, width, height) for spec in layout.instances],
    }


def write_official_json(layout: SceneLayout, path: str | Path) -> None:
    text = json.dumps(to_official_dict(layout), ensure_ascii=False, allow_nan=False, indent=1)
    write_bytes_atomic(Path(path), text.encode("utf-8") + b"\n")


def _anno(spec: InstanceSpec, width: int, height: int) -> dict[str, Any]:
    anno: dict[str, Any] = {"caption": spec.caption, "category_name": ""}

    def pixels(points: Sequence[tuple[float, float]]) -> list[list[float]]:
        return [[x * width, y * height] for x, y in points]

    box = spec.box
    if spec.kind is InstanceKind.MASK:
        rle = spec.mask if spec.mask is not None else _rasterise(spec.polygon or (), width, height)
        anno["mask"] = rle.to_dict()
        if spec.polygon is not None:
            anno["polygon"] = pixels(spec.polygon)
        if box is None:
            box = rle.bounding_box()
    elif spec.kind is InstanceKind.BOX:
        anno["mask"] = []
    if box is not None:
        x0, y0, x1, y1 = box
        anno["bbox"] = [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height]
    if spec.point is not None:
        anno["point"] = [spec.point[0] * width, spec.point[1] * height]
    if spec.scribble is not None:
        anno["scribble"] = pixels(spec.scribble)
    return anno


def _rasterise(polygon: Sequence[tuple[float, float]], width: int, height: int) -> MaskRLE:
    flat = [v for x, y in polygon for v in (x * width, y * height)]
    rles = coco_mask.frPyObjects([flat], height, width)
    merged = coco_mask.merge(rles)
    return MaskRLE(height=height, width=width, counts=merged["counts"].decode("ascii"))


def _present(value: Any) -> bool:
    # The official files write "no mask" as [] and may leave any key out.
    return value is not None and value != [] and value != {}


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )
