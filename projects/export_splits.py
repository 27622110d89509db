"""Train/val/test splits of an exported dataset, by scene, seeded.

A scene's renders never straddle splits: renders of one layout are near-duplicates, and a model tested on
a layout it was trained on looks better than it is. The scenes that have a render to export are sorted by
id, shuffled with `random.Random(seed)`, and cut in the ratios' proportions (largest remainders, so the
counts add up); a split with a ratio above 0 gets at least one scene when there are enough scenes. The
same scenes, ratios and seed always give the same splits.

Every split with a ratio above 0 must end up holding a scene, and a YOLO dataset needs a train and a val
split (its `data.yaml` names both): otherwise the export is refused, before anything is written.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from projects.export_errors import ExportError

SPLIT_NAMES: Final = ("train", "val", "test")
# How far the ratios may add up from 1: "0.33,0.33,0.33" is meant as thirds.
RATIO_SUM_TOLERANCE: Final = 0.015


class SplitError(ExportError):
    """Ratios that are not a split, or a split that would be empty."""


@dataclass(frozen=True)
class SplitRatios:
    train: float
    val: float
    test: float = 0.0

    def __post_init__(self) -> None:
        values = self.values()
        for name, value in zip(SPLIT_NAMES, values, strict=True):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise SplitError(f"the {name} ratio must be a number, not {value!r}")
            if value < 0:
                raise SplitError(f"the {name} ratio must not be negative (it is {value:g})")
        total = sum(values)
        if abs(total - 1.0) > RATIO_SUM_TOLERANCE:
            shown = " + ".join(f"{v:g}" for v in values)
            raise SplitError(f"the split ratios must add up to 1, but {shown} = {total:g}")

    def values(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)

    def to_dict(self) -> dict[str, float]:
        return dict(zip(SPLIT_NAMES, (float(v) for v in self.values()), strict=True))

    @classmethod
    def parse(cls, text: str) -> SplitRatios:
        """'0.8,0.1,0.1' (train, val, test) or '0.8,0.2' (no test split)."""
        parts = [part.strip() for part in text.split(",")]
        if len(parts) not in (2, 3) or not all(parts):
            raise SplitError(f"a split is TRAIN,VAL or TRAIN,VAL,TEST ratios such as 0.8,0.1,0.1, not {text!r}")
        try:
            numbers = [float(part) for part in parts]
        except ValueError:
            raise SplitError(f"the split ratios must be numbers such as 0.8,0.1,0.1, not {text!r}") from None
        return cls(*numbers)


@dataclass(frozen=True)
class SplitPlan:
    """Which split each scene went to; `names` are the splits written (those with a ratio above 0)."""

    names: tuple[str, ...]
    scene_split: dict[int, str]

    def scenes(self, name: str) -> list[int]:
        return sorted(scene for scene, split in self.scene_split.items() if split == name)


def plan_splits(scene_ids: Iterable[int], ratios: SplitRatios, seed: int, *, format: str) -> SplitPlan:
    """Assign scenes to splits (see the module's docstring); raises SplitError for a split left empty."""
    scenes = sorted(set(scene_ids))
    random.Random(seed).shuffle(scenes)
    names = tuple(name for name, ratio in zip(SPLIT_NAMES, ratios.values(), strict=True) if ratio > 0)
    if format == "yolo":
        for needed in ("train", "val"):
            if needed not in names:
                raise SplitError(
                    f"a YOLO dataset needs a {needed} split, but its ratio is 0; give it a share, e.g. 0.8,0.2"
                )
    counts = _counts(len(scenes), [ratio for ratio in ratios.values() if ratio > 0])
    for name, count in zip(names, counts, strict=True):
        if count == 0:
            raise SplitError(
                f"the {name} split would be empty: only {len(scenes)} scene(s) have renders to export, too few "
                f"for {len(names)} splits ({', '.join(names)}); splits are by scene, so export more scenes or "
                "give fewer splits a share"
            )
    assignment: dict[int, str] = {}
    start = 0
    for name, count in zip(names, counts, strict=True):
        assignment.update((scene, name) for scene in scenes[start : start + count])
        start += count
    return SplitPlan(names, assignment)


def _counts(total: int, ratios: Sequence[float]) -> list[int]:
    """`total` cut in proportion to `ratios` by largest remainders; each share gets one first if it can."""
    weight = sum(ratios)
    exact = [total * ratio / weight for ratio in ratios]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (exact[i] - counts[i], ratios[i]), reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    if total >= len(ratios):
        # A split with a share but no scene takes one from the largest split.
        for i, count in enumerate(counts):
            if count == 0:
                largest = max(range(len(counts)), key=lambda j: counts[j])
                counts[largest] -= 1
                counts[i] = 1
    return counts
