"""The process the crash test kills: it renders a project's queue and edits scenes, and prints a line
after every commit, so the parent knows what must survive a SIGKILL.

    python -m tests.desktop.crash_child PROJECT DEMO_MODEL
    python -m tests.desktop.crash_child --fork

With --fork it imports once and then, for each line `PROJECT DEMO_MODEL` on stdin, forks a worker that does
the same (it prints `forked PID` for the parent to kill, and `ended` once the worker is gone): a kill then
costs a fork instead of seconds of imports, and lands on the work, not on the imports.
"""

from __future__ import annotations

import os
import sys
import traceback
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


def work(path: Path, model: Path) -> None:
    with Project.open(path) as project:
        loop = QueueLoop(project, Runner(lambda _id: load_demo_model(model)), Reporter())
        while loop.run_one() is not None:
            with project.write() as session:
                scene = list_scenes(session)[0]
                # Edits are numbered across runs, so the parent can tell an older edit from a newer one.
                number = int(scene.caption.split()[1]) + 1 if scene.caption.startswith("edit ") else 1
                scene.caption = f"edit {number}"
            print(f"edit {number}", flush=True)


def serve_forks() -> None:
    # Nothing has run a torch op, opened a project or started a thread here yet, so a fork is a clean copy.
    for line in sys.stdin:
        path, model = line.split()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                work(Path(path), Path(model))
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)  # the worker never returns into this loop
        print(f"forked {pid}", flush=True)
        os.waitpid(pid, 0)
        print("ended", flush=True)


def main() -> int:
    if sys.argv[1:] == ["--fork"]:
        serve_forks()
    else:
        work(Path(sys.argv[1]), Path(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
