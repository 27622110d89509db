"""The demo model's placement checker: the shape-world analyser, no learned detector.

An instance's caption names a colour and a shape of the demo world ("a red circle"). What it found is
the largest blob of that colour; the overlap is measured against that blob's pixels (a mask's IoU, a
point or scribble inside the blob, the blob's box against a box), and the label score is 1 when the
blob has the named shape, else 0. A caption that names no world colour cannot be checked: the instance
is reported not found, with score 0.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from engine.checkers.base import requested_box, requested_mask
from engine.demo.analysis import Blob, classify_shape, colour_labels, find_blob, mask_iou
from engine.demo.world import COLOURS, SHAPES
from engine.geometry import box_iou
from engine.placement_report import InstancePlacement, PlacementReport, PlacementThresholds
from engine.request import InstanceKind, InstanceSpec, RenderRequest

NAME: Final = "shape-world"


def caption_terms(caption: str) -> tuple[str | None, str | None]:
    """The world colour and shape a caption names (None for either it does not name)."""
    words = caption.lower().replace(",", " ").split()
    colour = next((w for w in words if w in COLOURS), None)
    shape = next((w.rstrip("s") for w in words if w.rstrip("s") in SHAPES), None)
    return colour, shape


class ShapeWorldChecker:
    name = NAME

    def check(
        self, image: npt.NDArray[np.uint8], request: RenderRequest, thresholds: PlacementThresholds
    ) -> PlacementReport:
        labels = colour_labels(image)
        found = tuple(self._instance(image, labels, spec) for spec in request.instances)
        return PlacementReport(self.name, found, thresholds)

    def _instance(
        self, image: npt.NDArray[np.uint8], labels: npt.NDArray[np.int64], spec: InstanceSpec
    ) -> InstancePlacement:
        colour, shape = caption_terms(spec.caption)
        blob = None if colour is None else find_blob(image, colour, labels)
        if blob is None:
            return InstancePlacement(found=False)
        score = 1.0 if shape is None or classify_shape(blob) == shape else 0.0
        return InstancePlacement(found=True, iou=_overlap(blob, spec), score=score, box=blob.box)


def _overlap(blob: Blob, spec: InstanceSpec) -> float:
    if spec.kind is InstanceKind.POINT and spec.point is not None:
        return float(blob.contains(spec.point))
    if spec.kind is InstanceKind.SCRIBBLE and spec.scribble:
        return sum(blob.contains(p) for p in spec.scribble) / len(spec.scribble)
    height, width = blob.mask.shape
    wanted_mask = requested_mask(spec, height, width)
    if wanted_mask is not None:
        return mask_iou(blob.mask, wanted_mask)
    wanted = requested_box(spec)
    return box_iou(blob.box, wanted) if wanted is not None else 0.0
