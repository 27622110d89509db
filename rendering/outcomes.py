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
    reused_instances: tuple[int, ...] = ()  # instances (0-based) whose chains the engine kept from a render before

    @property
    def instance_count(self) -> int:
        return len(self.job.request.instances)

    def figures(self) -> str:
        """The render's time and reuse in words, e.g. "rendered in 2.1 s · 3 of 5 instances reused"."""
        text = f"rendered in {self.seconds:.1f} s"
        if self.instance_count:
            text += f" · {len(self.reused_instances)} of {self.instance_count} instances reused"
        return text
