"""What a placement checker is, and the overlap measures every checker shares."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from engine.geometry import box_iou
from engine.placement_report import Box, PlacementReport, PlacementThresholds
from engine.request import InstanceKind, InstanceSpec, RenderRequest

BoolMap = npt.NDArray[np.bool_]


class PlacementChecker(Protocol):
    """Reads a rendered image (H, W, 3 uint8, the size the model rendered at) against the request it was
    rendered from, and reports one entry per instance, in the request's order."""

    name: str

    def check(
        self, image: npt.NDArray[np.uint8], request: RenderRequest, thresholds: PlacementThresholds
    ) -> PlacementReport: ...


def requested_box(spec: InstanceSpec) -> Box | None:
    """The box an instance asks for: its box, or the bounds of its mask or polygon; None for a point or scribble."""
    if spec.box is not None:
        return spec.box
    if spec.mask is not None:
        return spec.mask.bounding_box()
    if spec.polygon:
        xs, ys = [p[0] for p in spec.polygon], [p[1] for p in spec.polygon]
        return (min(xs), min(ys), max(xs), max(ys))
    return None


def requested_mask(spec: InstanceSpec, height: int, width: int) -> BoolMap | None:
    """A mask instance's region at (height, width): its bitmap resized, else its polygon drawn; None otherwise."""
    if spec.kind is not InstanceKind.MASK:
        return None
    if spec.mask is not None:
        bitmap = Image.fromarray(spec.mask.decode() * 255)
        return np.asarray(bitmap.resize((width, height), Image.Resampling.NEAREST)) > 127
    if not spec.polygon:
        return None
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).polygon([(x * width, y * height) for x, y in spec.polygon], fill=255)
    return np.asarray(image) > 127


def point_in_box(point: tuple[float, float], box: Box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def box_overlap(spec: InstanceSpec, found: Box) -> float:
    """The overlap of a found box with what `spec` asks for (module docstring of engine.placement_report):
    box IoU for boxes, masks and polygons (by their bounds), containment for a point, the share of a
    scribble's points inside the box."""
    if spec.kind is InstanceKind.POINT and spec.point is not None:
        return float(point_in_box(spec.point, found))
    if spec.kind is InstanceKind.SCRIBBLE and spec.scribble:
        return sum(point_in_box(p, found) for p in spec.scribble) / len(spec.scribble)
    wanted = requested_box(spec)
    return box_iou(found, wanted) if wanted is not None else 0.0
