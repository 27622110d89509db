"""Placement of the demo model, measured: does it put what the user drew where the user drew it?

    .venv/bin/python benchmarks/placement.py [--model runs/demo/model] [--layouts 200] [--steps 20]

Renders held-out layouts with every location kind, with the multi-instance sampler on and off, and prints
one table (targets: boxes >= 0.90, points >= 0.90, scribbles >= 0.80, mask IoU >= 0.60), the edit
locality ratio (change outside the moved instance's old and new boxes vs inside them) and the render
time of a 4-instance scene on this machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "demo" / "model")
    parser.add_argument("--layouts", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--edits", type=int, default=20)
    args = parser.parse_args(argv)
    if not (args.model / "config.json").exists():
        print(f"error: no demo model at {args.model} (train one: scripts/train_demo.py)", file=sys.stderr)
        return 1

    import numpy as np

    from engine.demo.model import load_demo
    from engine.demo.placement import measure, measure_edit_locality, request_for, table
    from engine.demo.world import generate
    from engine.pipeline import InstanceDiffusionPipeline
    from engine.request import InstanceKind, RenderRequest

    components, _ = load_demo(args.model)
    pipe = InstanceDiffusionPipeline(
        components.vae, components.text_encoder, components.tokenizer, components.unet, preview_factors=None
    )

    def render(request: RenderRequest) -> np.ndarray:
        return pipe(request).image

    for mis in (0.36, 0.0):
        scores = measure(render, layouts=args.layouts, steps=args.steps, mis=mis)
        print(table(scores, f"\nplacement over {args.layouts} held-out layouts, {args.steps} steps, mis {mis}"))
    outside, inside = measure_edit_locality(render, edits=args.edits, steps=args.steps)
    print(
        f"\nedit locality: mean change {outside:.2f} outside the moved boxes vs {inside:.2f} inside (ratio {outside / max(inside, 1e-9):.3f})"
    )

    scene = next(s for s in (generate(seed) for seed in range(10_000, 20_000)) if len(s.instances) == 4)
    request = request_for(scene, InstanceKind.BOX, steps=args.steps)
    pipe(request)  # warm-up
    start = time.perf_counter()
    pipe(request)
    print(f"4-instance scene, {args.steps} steps, 64x64 on {pipe.device}: {time.perf_counter() - start:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
