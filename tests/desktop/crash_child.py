"""The process the crash test kills: it renders a project's queue and edits scenes, and prints a line
after every commit, so the parent knows what must survive a SIGKILL.

    python -m tests.desktop.crash_child PROJECT DEMO_MODEL
"""

from __future__ import annotations

import sys
from pathlib import Path

from engine.providers import load_demo_model
from engine.runner import Runner
from projects.database import Project
from projects.queue import JobSnapshot
from projects.scenes import list_scenes
from rendering.outcomes import JobResult, Outcome
from rendering.queue_loop import QueueLoop


class Reporter:
    def job_started(self, job: JobSnapshot) -> None:
        print(f"started {job.id}", flush=True)

    def job_progress(self, job_id: int, step: int, total: int, preview: object) -> None:
        pass

    def job_ended(self, result: JobResult) -> None:
        if result.outcome is Outcome.DONE:
            print(f"render {result.render_id} job {result.job.id}", flush=True)


def main() -> int:
    path, model = Path(sys.argv[1]), Path(sys.argv[2])
    with Project.open(path) as project:
        loop = QueueLoop(project, Runner(lambda _id: load_demo_model(model)), Reporter())
        while loop.run_one() is not None:
            with project.write() as session:
                scene = list_scenes(session)[0]
                # Edits are numbered across runs, so the parent can tell an older edit from a newer one.
                number = int(scene.caption.split()[1]) + 1 if scene.caption.startswith("edit ") else 1
                scene.caption = f"edit {number}"
            print(f"edit {number}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
