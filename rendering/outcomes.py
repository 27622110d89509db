"""How a job of the render queue ended, as plain data: importing this loads no torch (nor any model),
so the GUI thread can compare outcomes without the engine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from projects.queue import JobSnapshot


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
