"""Whether each instance of a render landed where its layout asked, as plain data (standard library only).

A placement checker (`engine.checkers`) reads a render and reports, per instance, what it found: a region
(a normalised box), its overlap with the requested location and how well what it found matches the
caption. The overlap depends on how the instance was located:
- a box: the IoU of the found box with the requested box;
- a mask or polygon: the IoU of the found region with the requested mask (a detector, which finds only
  boxes, compares with the mask's bounding box);
- a point: 1.0 when the found region contains the point, else 0.0;
- a scribble: the share of the scribble's points inside the found region.

Whether an instance is *placed* is not stored: it is decided from the stored figures and the project's
current thresholds, so changing a threshold re-judges every render without rendering again. The project
file keeps a report as its `to_dict()`; the project layer imports this module (it is torch-free).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

Box = tuple[float, float, float, float]

DEFAULT_IOU: Final = 0.5
DEFAULT_SCORE: Final = 0.2


class PlacementDataError(ValueError):
    """A stored placement report or threshold that is not what this module writes."""


@dataclass(frozen=True)
class PlacementThresholds:
    """An instance is placed when found with an overlap of at least `iou` and a label score of at least `score`."""

    iou: float = DEFAULT_IOU
    score: float = DEFAULT_SCORE

    def __post_init__(self) -> None:
        for name in ("iou", "score"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise PlacementDataError(f"the {name} threshold must be a number, not {value!r}")
            if not 0.0 <= value <= 1.0:
                raise PlacementDataError(f"the {name} threshold must be between 0 and 1, not {value:g}")

    def to_dict(self) -> dict[str, float]:
        return {"iou": float(self.iou), "score": float(self.score)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlacementThresholds:
        return cls(iou=data.get("iou", DEFAULT_IOU), score=data.get("score", DEFAULT_SCORE))


@dataclass(frozen=True)
class InstancePlacement:
    """What the checker found for one instance (in the request's order)."""

    found: bool
    iou: float = 0.0  # the overlap with the requested location (see the module's docstring)
    score: float = 0.0  # how well what was found matches the caption, 0..1
    box: Box | None = None  # the region found, normalised (x0, y0, x1, y1)

    def placed(self, thresholds: PlacementThresholds) -> bool:
        return self.found and self.iou >= thresholds.iou and self.score >= thresholds.score

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"found": self.found, "iou": round(self.iou, 4), "score": round(self.score, 4)}
        if self.box is not None:
            data["box"] = [round(v, 5) for v in self.box]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> InstancePlacement:
        if not isinstance(data, Mapping):
            raise PlacementDataError("an instance's placement must be an object")
        box = data.get("box")
        if box is not None:
            if not isinstance(box, Sequence) or len(box) != 4:
                raise PlacementDataError("a found box must have 4 numbers")
            box = tuple(_unit(v, "box") for v in box)
        return cls(
            found=bool(data.get("found", False)),
            iou=_unit(data.get("iou", 0.0), "iou"),
            score=_unit(data.get("score", 0.0), "score"),
            box=box,
        )


@dataclass(frozen=True)
class PlacementReport:
    """One render's check: the checker that made it, the thresholds it judged by, one entry per instance."""

    checker: str  # e.g. "shape-world" or "owlv2:<folder name>"
    instances: tuple[InstancePlacement, ...]
    thresholds: PlacementThresholds = field(default_factory=PlacementThresholds)

    def missed(self, thresholds: PlacementThresholds | None = None) -> tuple[int, ...]:
        """The (0-based) instances that did not land, by `thresholds` (default: the report's own)."""
        judge = thresholds or self.thresholds
        return tuple(i for i, inst in enumerate(self.instances) if not inst.placed(judge))

    def all_placed(self, thresholds: PlacementThresholds | None = None) -> bool:
        return not self.missed(thresholds)

    def rank(self, thresholds: PlacementThresholds | None = None) -> tuple[int, int, float]:
        """Larger is better: all placed first, then how many are placed, then the mean overlap."""
        missed = len(self.missed(thresholds))
        mean_iou = sum(i.iou for i in self.instances) / len(self.instances) if self.instances else 1.0
        return (int(missed == 0), len(self.instances) - missed, mean_iou)

    def summary(self, thresholds: PlacementThresholds | None = None) -> str:
        """In words, for a badge or a table: "all placed", "1 of 3 missed"."""
        missed = len(self.missed(thresholds))
        return "all placed" if missed == 0 else f"{missed} of {len(self.instances)} missed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "checker": self.checker,
            "thresholds": self.thresholds.to_dict(),
            "instances": [inst.to_dict() for inst in self.instances],
        }

    @classmethod
    def from_dict(cls, data: Any) -> PlacementReport:
        if not isinstance(data, Mapping):
            raise PlacementDataError("a placement report must be an object")
        checker, instances = data.get("checker"), data.get("instances")
        if not isinstance(checker, str) or not isinstance(instances, list):
            raise PlacementDataError("a placement report needs a checker name and a list of instances")
        thresholds = data.get("thresholds", {})
        if not isinstance(thresholds, Mapping):
            raise PlacementDataError("a placement report's thresholds must be an object")
        return cls(
            checker=checker,
            instances=tuple(InstancePlacement.from_dict(inst) for inst in instances),
            thresholds=PlacementThresholds.from_dict(thresholds),
        )


def _unit(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlacementDataError(f"a placement {name} must be a number, not {value!r}")
    return min(1.0, max(0.0, float(value)))
