"""The placement check of each finished render, and the re-roll that follows a miss.

After a job renders, the checker of its model (`engine.checkers`: the shape-world analyser for the demo
model, a detector from the user's files for the others) reads the image, off any transaction: a detector
takes a while. Its report is stored with the render in the write that finishes the job, and in that same
write, when the job asks for "until placed" and the report misses an instance by the project's current
thresholds, the next seed is queued (`projects.queue.reroll`).

A model without a checker renders unchecked. A checker that fails (a missing folder, a bug) never costs
the render: it is stored unchecked, and the job's result says why.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from engine.placement_report import PlacementReport, PlacementThresholds
from projects.placement import placement_thresholds, stored_report
from projects.queue import JobSnapshot, RenderOutput, reroll
from rendering.output import render_output

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from engine.checkers.base import PlacementChecker
    from engine.model_settings import ModelSettings
    from engine.request import RenderRequest
    from engine.runner import RenderResult

log = logging.getLogger(__name__)

# Which checker reads a model's renders: None when the model has none. May raise (a checker folder that
# is missing or holds no model): the render is then stored unchecked.
CheckerSelection = Callable[[str], "PlacementChecker | None"]


def demo_checker_only(model_id: str) -> PlacementChecker | None:
    """The selection without any model settings: the demo model's shape-world checker, nothing else."""
    from engine.checkers.shape_world import ShapeWorldChecker
    from engine.model_ids import DEMO

    return ShapeWorldChecker() if model_id == DEMO else None


def settings_checkers(settings: Callable[[], ModelSettings | None]) -> CheckerSelection:
    """The selection by the model settings `settings()` returns when a render is checked (read then, so a
    checker folder set meanwhile is used): the demo model's checker, else the configured detector
    (engine.checkers.selection, which keeps a loaded detector for the next render)."""

    def select(model_id: str) -> PlacementChecker | None:
        from engine.checkers.selection import checker_for

        return checker_for(model_id, settings())

    return select


@dataclass(frozen=True)
class CheckResult:
    """A render's check: the report, or None when it was not checked, with why in words (`note`) when a
    checker failed."""

    report: PlacementReport | None = None
    note: str | None = None

    @property
    def placement(self) -> dict[str, Any] | None:
        """As stored with the render (`projects.queue.RenderOutput.placement`)."""
        return None if self.report is None else self.report.to_dict()


class PlacementCheck:
    """Runs the checker of each render's model, chosen again for every render (so a checker set in the
    model settings meanwhile is used; `engine.checkers.selection` keeps a loaded detector, so choosing
    again costs nothing)."""

    def __init__(self, select: CheckerSelection = demo_checker_only) -> None:
        self._select = select

    def run(
        self, image: npt.NDArray[np.uint8], request: RenderRequest, thresholds: PlacementThresholds
    ) -> CheckResult:
        try:
            checker = self._select(request.model_id)
            if checker is None:
                return CheckResult()
            return CheckResult(checker.check(image, request, thresholds))
        except Exception as exc:  # the render is worth more than its check: store it unchecked
            log.exception("the placement check of a %s render failed", request.model_id)
            return CheckResult(note=f"placement not checked: {exc}")


def checked_output(
    rendered: RenderResult, check: PlacementCheck, thresholds: PlacementThresholds
) -> tuple[RenderResult, RenderOutput]:
    """Check a finished render; returns it (with a note when the check failed, kept with the render too)
    and what is stored for it, its placement included."""
    result = check.run(rendered.image, rendered.request, thresholds)
    if result.note is not None:
        rendered = dataclasses.replace(rendered, notes=(*rendered.notes, result.note))
    return rendered, dataclasses.replace(render_output(rendered), placement=result.placement)


@dataclass(frozen=True)
class PlacementOutcome:
    """What a stored render's check means now: its summary by the project's thresholds, and the job that
    tries the next seed (None: placed, not checked, no re-roll asked for, or every seed tried)."""

    report: PlacementReport | None = None
    summary: str | None = None  # "all placed", "1 of 3 missed"; None: not checked
    rerolled: JobSnapshot | None = None


def judge_and_reroll(session: Session, job: JobSnapshot, placement: dict[str, Any] | None) -> PlacementOutcome:
    """In the write that finished `job` with `placement`: judge it by the project's current thresholds and,
    when it missed an instance and the job is part of a re-roll chain with seeds left, queue the next seed."""
    report = stored_report(placement)
    if report is None:
        return PlacementOutcome()
    thresholds = placement_thresholds(session)
    rerolled = None
    if job.until_placed > 1 and not report.all_placed(thresholds):
        rerolled = reroll(session, job.id)
    return PlacementOutcome(report, report.summary(thresholds), rerolled)
