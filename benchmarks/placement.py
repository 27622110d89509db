"""Placement of the demo model, measured: does it put what the user drew where the user drew it?

    .venv/bin/python benchmarks/placement.py [--model resources/demo/model] [--layouts 200] [--steps 20] [--record]
        [--canvas-layouts 50] [--figure docs/demo_model_renders.png]

Renders held-out layouts with every location kind, with the multi-instance sampler on and off, and prints
one table (targets: boxes >= 0.90, points >= 0.90, scribbles >= 0.80, mask IoU >= 0.60, right shape >= 0.80),
the edit locality ratio (change outside the moved instance's old and new boxes vs inside them, <= 0.25), boxes
on 96x64 and 64x96 canvases (>= 0.80) and the render time of a 4-instance scene on this machine. `--record`
writes the figures into the model's manifest; `--figure` draws held-out layouts' ground truth above the
model's renders of them (boxes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def render_times(pipe: Any, steps: tuple[int, ...]) -> dict[str, float]:
    """Seconds for one 4-instance held-out scene at each step count (after a warm-up render)."""
    from engine.demo.placement import request_for
    from engine.demo.world import generate
    from engine.request import InstanceKind

    scene = next(s for s in (generate(seed) for seed in range(10_000, 20_000)) if len(s.instances) == 4)
    pipe.render(request_for(scene, InstanceKind.BOX, steps=2))  # warm-up
    times = {}
    for count in steps:
        start = time.perf_counter()
        pipe.render(request_for(scene, InstanceKind.BOX, steps=count))
        times[f"4 instances, {count} steps, 64x64, {pipe.device}"] = round(time.perf_counter() - start, 3)
    return times


def draw_figure(render: Any, path: Path, steps: int, count: int = 8, scale: int = 3) -> None:
    """Ground truth (top row) above the model's render of the same box layout (bottom row), boxes outlined."""
    import numpy as np
    from PIL import Image, ImageDraw

    from engine.demo.placement import HELD_OUT_SEED, request_for
    from engine.demo.world import generate
    from engine.request import InstanceKind

    size = 64 * scale
    sheet = Image.new("RGB", (count * (size + 4), 2 * size + 4), "white")
    for index in range(count):
        scene = generate(HELD_OUT_SEED + index)
        rendered = np.asarray(render(request_for(scene, InstanceKind.BOX, steps=steps)))
        for row, pixels in enumerate((scene.image, rendered)):
            tile = Image.fromarray(pixels).resize((size, size), Image.Resampling.NEAREST)
            draw = ImageDraw.Draw(tile)
            for inst in scene.instances:
                x0, y0, x1, y1 = (v * size for v in inst.box)
                draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(0, 0, 0))
            sheet.paste(tile, (index * (size + 4), row * (size + 4)))
    sheet.save(path)


def main(argv: list[str] | None = None) -> int:
    from resources import resource_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=resource_path("demo", "model"))
    parser.add_argument("--layouts", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--canvas-layouts", type=int, default=50, help="layouts per non-square canvas")
    parser.add_argument("--figure", type=Path, help="write ground truth above renders of 8 held-out layouts here")
    parser.add_argument(
        "--time-steps",
        type=int,
        nargs="*",
        help="step counts to time a 4-instance render at (default: --steps and 50)",
    )
    parser.add_argument("--record", action="store_true", help="write the figures into the model's manifest.json")
    args = parser.parse_args(argv)
    if not (args.model / "config.json").exists():
        print(f"error: no demo model at {args.model} (train one: scripts/train_demo.py)", file=sys.stderr)
        return 1

    import numpy as np

    from engine.demo.bundle import record_evaluation
    from engine.demo.model import load_demo
    from engine.demo.placement import evaluation_report, report_table
    from engine.pipeline import InstanceDiffusionPipeline
    from engine.request import RenderRequest

    components, _ = load_demo(args.model)
    pipe = InstanceDiffusionPipeline(
        components.vae, components.text_encoder, components.tokenizer, components.unet, preview_factors=None
    )

    def render(request: RenderRequest) -> np.ndarray:
        return pipe.render(request).image

    if args.figure:
        draw_figure(render, args.figure, args.steps)
        print(f"figure: {args.figure}")
    report = evaluation_report(
        render, layouts=args.layouts, steps=args.steps, edits=args.edits, canvas_layouts=args.canvas_layouts
    )
    default_steps = RenderRequest.__dataclass_fields__["steps"].default
    time_steps = args.time_steps if args.time_steps is not None else [args.steps, default_steps]
    report["render_seconds"] = render_times(pipe, tuple(sorted(set(time_steps))))
    print(report_table(report))
    if args.record:
        record_evaluation(args.model, report)
        print(f"recorded in {args.model / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
