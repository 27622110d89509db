"""The parts of the rendering layer a GUI thread imports load no torch and no Qt."""

from __future__ import annotations

import subprocess
import sys

from rendering.outcomes import Outcome
from tests.conftest import REPO_ROOT

CHECK = """
import sys
import rendering, rendering.outcomes, rendering.output, rendering.worker
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
