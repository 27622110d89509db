"""Re-rolling until placed, measured: how many scenes hold their layout at the first seed and after re-rolls?

    .venv/bin/python benchmarks/placement_rerolls.py [--model resources/demo/model] [--layouts 100]
        [--until-placed 4] [--steps 20] [--threads 0]

Renders held-out world layouts (boxes) with the demo model through the real render queue of a throwaway
project, each job asking for "until placed, at most N seeds": every render is checked by the shape-world
checker with the project's default thresholds (IoU >= 0.5 and the named shape), and a render that missed
an instance queues the next seed. Prints the share of scenes fully placed at the first seed and after the
re-rolls, the mean renders per scene, and the time per placed scene on this machine (every render, check
and store counted, the model's loading not).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class Progress:
    """One line per finished job on stderr (the queue loop's listener)."""

    def __init__(self) -> None:
        self.done = 0

    def job_started(self, job: Any) -> None:
        pass

    def job_progress(self, job_id: int, step: int, total: int, preview: Any) -> None:
        pass

    def job_ended(self, result: Any) -> None:
        self.done += 1
        words = result.placement_words() or result.error or "not checked"
        sys.stderr.write(f"render {self.done}: scene {result.job.scene_id}, seed {result.job.request.seed}: {words}\n")
        sys.stderr.flush()


def queue_layouts(project: Any, layouts: int, steps: int, until_placed: int) -> None:
    """One scene per held-out layout, each queued once with `until_placed` seeds at most."""
    from engine.demo.placement import HELD_OUT_SEED, request_for
    from engine.demo.world import generate
    from engine.request import InstanceKind
    from projects.queue import enqueue
    from projects.scenes import SceneLayout, add_scene

    with project.write() as session:
        for index in range(layouts):
            request = request_for(generate(HELD_OUT_SEED + index), InstanceKind.BOX, steps=steps)
            layout = SceneLayout(
                f"layout {index}", request.prompt, request.width, request.height, request.instances, seed=request.seed
            )
            scene = add_scene(session, layout)
            enqueue(session, request, scene.id, until_placed=until_placed)


def figures(results: list[Any], layouts: int, seconds: float) -> dict[str, float]:
    from rendering.outcomes import Outcome

    done = [r for r in results if r.outcome is Outcome.DONE]
    first_placed = sum(bool(r.all_placed) for r in done if r.job.reroll_of is None)
    placed_scenes = len({r.job.scene_id for r in done if r.all_placed})
    return {
        "renders": len(done),
        "failed": len(results) - len(done),
        "unchecked": sum(r.placement_summary is None for r in done),
        "first": first_placed / layouts,
        "after": placed_scenes / layouts,
        "placed": placed_scenes,
        "per_scene": len(done) / layouts,
        "seconds": seconds,
        "per_placed": seconds / placed_scenes if placed_scenes else float("inf"),
    }


def report_lines(f: dict[str, float], layouts: int, until_placed: int, steps: int) -> list[str]:
    per_placed = "no scene was placed" if f["placed"] == 0 else f"{f['per_placed']:.2f} s"
    return [
        f"re-roll until placed over {layouts} held-out layouts (boxes), at most {until_placed} seeds, {steps} steps",
        f"  fully placed at the first seed:   {f['first']:.0%}",
        f"  fully placed after re-rolls:      {f['after']:.0%} ({int(f['placed'])} of {layouts} scenes)",
        f"  renders per scene (mean):         {f['per_scene']:.2f} ({int(f['renders'])} renders)",
        f"  time per placed scene:            {per_placed} ({f['seconds']:.1f} s in all)",
        f"  failed jobs: {int(f['failed'])}, renders not checked: {int(f['unchecked'])}",
    ]


def main(argv: list[str] | None = None) -> int:
    from resources import resource_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=resource_path("demo", "model"))
    parser.add_argument("--layouts", type=int, default=100)
    parser.add_argument("--until-placed", type=int, default=4, help="seeds a scene may try (default: 4)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if not (args.model / "config.json").exists():
        print(f"error: no demo model at {args.model} (train one: scripts/train_demo.py)", file=sys.stderr)
        return 1
    if args.layouts < 1 or not 1 <= args.until_placed <= 100:
        print("error: --layouts takes 1 or more, --until-placed 1 to 100", file=sys.stderr)
        return 1

    import torch

    from engine.providers import load_demo_model
    from engine.runner import Runner
    from projects.database import Project
    from rendering.queue_loop import QueueLoop

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = load_demo_model(args.model)
    load = f", load average {os.getloadavg()[0]:.2f} at start" if hasattr(os, "getloadavg") else ""
    print(f"torch {torch.__version__} on CPU, {torch.get_num_threads()} threads{load}")
    with (
        tempfile.TemporaryDirectory(prefix="rerolls-") as folder,
        Project.create(Path(folder) / "b.instproj") as project,
    ):
        queue_layouts(project, args.layouts, args.steps, args.until_placed)
        loop = QueueLoop(project, Runner(lambda _id: model), Progress())
        start = time.perf_counter()
        results = loop.run_until_empty()
        seconds = time.perf_counter() - start
    print(
        "\n".join(report_lines(figures(results, args.layouts, seconds), args.layouts, args.until_placed, args.steps))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
