"""Which of the selected renders a dataset takes, judged by their placement checks, and what it left out.

- `everything`: every selected render.
- `placed`: the selected renders whose every instance is placed by the project's current thresholds.
  A render that was never checked is left out ("not checked"), one that missed any instance too
  ("missed instances").
- `best`: per scene, its best checked render (`projects.placement.best_render`: all placed first, then the
  most placed, then the mean overlap, then the latest), among all of the scene's renders (`which` is not
  used: "latest" would leave nothing to choose from) or among the renders picked by id. The scene's other
  renders are left out ("not best"); a scene none of whose renders was checked gives none ("not checked").
  A best render may still miss instances; the report counts those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from engine.placement_report import PlacementThresholds
from projects.export_errors import NothingToExportError
from projects.export_source import RenderRef
from projects.placement import best_render

Include = Literal["placed", "best", "everything"]
INCLUDES: Final = ("placed", "best", "everything")

NOT_CHECKED: Final = "not checked"
MISSED: Final = "missed instances"
NOT_BEST: Final = "not best"
REASONS: Final = (NOT_CHECKED, MISSED, NOT_BEST)


@dataclass(frozen=True)
class LeftOut:
    """Renders left out of an export for one reason, and the instances they hold."""

    reason: str  # one of REASONS
    renders: int
    instances: int
    missed: int = 0  # for "missed instances": how many of those instances missed

    def describe(self) -> str:
        text = f"{self.renders} render(s) ({self.instances} instance(s)) left out: {self.reason}"
        return text + (f", {self.missed} instance(s) missed" if self.missed else "")


@dataclass(frozen=True)
class Included:
    renders: tuple[RenderRef, ...]
    left_out: tuple[LeftOut, ...]  # in the order of REASONS, only reasons that left something out
    best_with_misses: int = 0  # `best` only: best renders that still miss an instance


def include_renders(renders: Sequence[RenderRef], include: Include, thresholds: PlacementThresholds) -> Included:
    """The renders `include` keeps, in their order; raises NothingToExportError when it keeps none."""
    tally: dict[str, list[int]] = {reason: [0, 0, 0] for reason in REASONS}

    def leave_out(reason: str, ref: RenderRef, missed: int = 0) -> None:
        counts = tally[reason]
        counts[0] += 1
        counts[1] += ref.instances
        counts[2] += missed

    kept: list[RenderRef] = []
    best_with_misses = 0
    if include == "everything":
        kept = list(renders)
    elif include == "placed":
        for ref in renders:
            report = ref.report
            if report is None:
                leave_out(NOT_CHECKED, ref)
            elif missed := report.missed(thresholds):
                leave_out(MISSED, ref, len(missed))
            else:
                kept.append(ref)
    else:
        by_scene: dict[int, list[RenderRef]] = {}
        for ref in renders:
            by_scene.setdefault(ref.scene_id, []).append(ref)
        chosen = set()
        for scene_renders in by_scene.values():
            best = best_render(scene_renders, thresholds)
            if best is not None:
                chosen.add(best.render_id)
                report = best.report
                best_with_misses += int(report is not None and not report.all_placed(thresholds))
        for ref in renders:
            if ref.render_id in chosen:
                kept.append(ref)
            else:
                leave_out(NOT_BEST if ref.report is not None else NOT_CHECKED, ref)
    left_out = tuple(LeftOut(reason, *tally[reason]) for reason in REASONS if tally[reason][0])
    if not kept:
        raise NothingToExportError(_nothing_kept(len(renders), include, left_out))
    return Included(tuple(kept), left_out, best_with_misses)


def _nothing_kept(total: int, include: Include, left_out: tuple[LeftOut, ...]) -> str:
    why = ", ".join(f"{item.renders} {item.reason}" for item in left_out)
    wanted = "placed" if include == "placed" else "checked"
    return (
        f"none of the {total} selected render(s) is {wanted} ({why}); render with placement checks "
        "(until placed), lower the placement thresholds, or include everything"
    )
