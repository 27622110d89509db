"""The parts of the rendering layer a GUI thread imports load no torch and no Qt."""

from __future__ import annotations

import subprocess
import sys

from rendering.outcomes import Outcome
from tests.conftest import REPO_ROOT

CHECK = """
import sys
import rendering, rendering.outcomes, rendering.output, rendering.worker, rendering.live_preview
heavy = sorted(name for name in ("torch", "diffusers", "transformers", "PySide6") if name in sys.modules)
print(",".join(heavy) or "none")
"""


def test_importing_outcomes_output_and_worker_loads_no_torch_and_no_qt() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"


def test_outcomes_compare_as_members_and_read_as_words() -> None:
    assert Outcome("out of memory") is Outcome.OUT_OF_MEMORY
    assert f"{Outcome.DONE}" == "done"
    assert {outcome for outcome in Outcome if outcome.failed} == {Outcome.FAILED, Outcome.OUT_OF_MEMORY}


def test_a_finished_job_says_its_render_time_and_how_many_instances_were_reused() -> None:
    from engine.request import InstanceKind, InstanceSpec, RenderRequest
    from projects.models import JobStatus
    from projects.queue import JobSnapshot
    from rendering.outcomes import JobResult

    box = InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    request = RenderRequest(prompt="cats", instances=(box, box, box))
    job = JobSnapshot(4, 1, request, JobStatus.DONE, 0, 1, 1, None, 3, 3)
    result = JobResult(job, Outcome.DONE, 2.04, render_id=9, reused_instances=(0, 2))
    assert (result.instance_count, result.figures()) == (3, "rendered in 2.0 s · 2 of 3 instances reused")
    plain = JobResult(
        JobSnapshot(5, 1, RenderRequest(prompt="x"), JobStatus.DONE, 0, 1, 1, None, 3, 3), Outcome.DONE, 1
    )
    assert plain.figures() == "rendered in 1.0 s"
