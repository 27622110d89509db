"""How a job of the render queue ended, as plain data: importing this loads no torch (nor any model),
so the GUI thread can compare outcomes without the engine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.placement_report import PlacementReport
from projects.queue import JobSnapshot

ALL_PLACED = "all placed"  # engine.placement_report.PlacementReport.summary() of a render with no miss


class Outcome(StrEnum):
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REQUEUED = "requeued"  # stopped cleanly: back to pending
    OUT_OF_MEMORY = "out of memory"  # failed, and the queue should pause
    NOT_STORED = "not stored"  # rendered, but the project file could not take it (busy, disk full): back to pending

    @property
    def failed(self) -> bool:
        """The job failed (for out of memory, the queue should also pause)."""
        return self in (Outcome.FAILED, Outcome.OUT_OF_MEMORY)


class JobPhase(StrEnum):
    """What a running job does before its first step, in words for the user."""

    LOADING_MODEL = "loading the model…"


@dataclass(frozen=True)
class JobResult:
    job: JobSnapshot
    outcome: Outcome
    seconds: float
    render_id: int | None = None
    error: str | None = None
    notes: tuple[str, ...] = ()
    reused_instances: tuple[int, ...] = ()  # instances (0-based) whose chains the engine kept from a render before
    placement: PlacementReport | None = None  # the render's placement check; None: not checked
    placement_summary: str | None = None  # by the project's thresholds when stored: "all placed", "1 of 3 missed"
    rerolled: JobSnapshot | None = None  # the job queued with the next seed after a miss

    @property
    def instance_count(self) -> int:
        return len(self.job.request.instances)

    def figures(self) -> str:
        """The render's time and reuse in words, e.g. "rendered in 2.1 s · 3 of 5 instances reused"."""
        text = f"rendered in {self.seconds:.1f} s"
        if self.instance_count:
            text += f" · {len(self.reused_instances)} of {self.instance_count} instances reused"
        return text

    @property
    def all_placed(self) -> bool | None:
        """Whether every instance was placed, by the thresholds when stored; None when not checked."""
        return None if self.placement_summary is None else self.placement_summary == ALL_PLACED

    def placement_words(self) -> str | None:
        """The check and what followed it, e.g. "all placed", "1 of 3 missed -> seed 8 queued", "1 of 3
        missed, all 4 seeds tried"; None when the render was not checked."""
        if self.placement_summary is None:
            return None
        if self.rerolled is not None:
            return f"{self.placement_summary} -> seed {self.rerolled.request.seed} queued"
        if self.job.until_placed > 1 and not self.all_placed:
            return f"{self.placement_summary}, all {self.job.until_placed} seeds tried"
        return self.placement_summary
