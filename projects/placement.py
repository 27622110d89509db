"""Placement checks in the project file: the thresholds renders are judged by, and reading stored reports.

The checks themselves run while rendering (`rendering`); what they found is stored per render
(`Render.placement`, an `engine.placement_report.PlacementReport` as a dict). Whether an instance is
placed is judged here, with the project's current thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from engine.placement_report import PlacementDataError, PlacementReport, PlacementThresholds
from projects.models import Render
from projects.scenes import get_settings

log = logging.getLogger(__name__)


def placement_thresholds(session: Session) -> PlacementThresholds:
    row = get_settings(session)
    try:
        return PlacementThresholds(iou=row.placement_iou, score=row.placement_score)
    except PlacementDataError as exc:  # a file edited by hand: judge by the defaults, say so
        log.warning("the project's placement thresholds are not valid (%s); using the defaults", exc)
        return PlacementThresholds()


def set_placement_thresholds(session: Session, thresholds: PlacementThresholds) -> None:
    """Store new thresholds (validated by `PlacementThresholds` itself when it was made)."""
    row = get_settings(session)
    row.placement_iou, row.placement_score = float(thresholds.iou), float(thresholds.score)


def stored_report(data: dict[str, Any] | None, render_id: int | None = None) -> PlacementReport | None:
    """A stored placement as a report; None when the render was not checked or its record is unreadable."""
    if data is None:
        return None
    try:
        return PlacementReport.from_dict(data)
    except PlacementDataError as exc:
        log.warning("render %s: its placement record is unreadable (%s); treated as not checked", render_id, exc)
        return None


def render_report(render: Render) -> PlacementReport | None:
    return stored_report(render.placement, render.id)


class CheckedRender(Protocol):
    """What `best_render` reads: a Render, or the export's lighter RenderRef."""

    @property
    def id(self) -> int: ...

    @property
    def placement(self) -> dict[str, Any] | None: ...


R = TypeVar("R", bound=CheckedRender)


def best_render(renders: Iterable[R], thresholds: PlacementThresholds) -> R | None:
    """The best checked render of `renders` (a scene's, or a re-roll chain's): all placed first, then the most
    instances placed, then the highest mean overlap; the latest wins a tie. None if none was checked."""
    best: tuple[tuple[int, int, float], int, R] | None = None
    for render in renders:
        report = stored_report(render.placement, render.id)
        if report is None:
            continue
        key = (report.rank(thresholds), render.id, render)
        if best is None or key[:2] > best[:2]:
            best = key
    return None if best is None else best[2]
