"""Short training runs of demo-model recipes side by side, placement measured on a small held-out probe.

    .venv/bin/python scripts/demo_ablations.py VARIANTS.json --out runs/ablations [--steps 400] [--eval-at 200 400]
        [--layouts 16] [--only NAME ...]

VARIANTS.json maps a name to overrides: {"training": {UnetTrainingConfig fields}, "fusers": {FuserConfig
fields}}. Every variant starts from the same fresh model (seed 0) and trains on the VAE of --vae (the
bundled demo model's by default). Results are appended to OUT/results.jsonl, one line per evaluation;
the table in docs/demo_model.md comes from there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from resources import resource_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ablations")
    parser.add_argument("--vae", type=Path, default=resource_path("demo", "model"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-at", type=int, nargs="+", default=[200, 400])
    parser.add_argument("--layouts", type=int, default=16)
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from engine.demo.model import DemoModelConfig, build_demo_components, load_demo
    from engine.demo.placement import KindScore, request_for, score_image
    from engine.demo.unet_training import UnetTrainingConfig, train_unet
    from engine.demo.world import generate
    from engine.models.fusers import FuserConfig
    from engine.pipeline import InstanceDiffusionPipeline
    from engine.request import InstanceKind

    bundled, bundled_config = load_demo(args.vae)
    variants = json.loads(args.variants.read_text(encoding="utf-8"))
    results = args.out / "results.jsonl"
    args.out.mkdir(parents=True, exist_ok=True)
    for name, overrides in variants.items():
        if args.only and name not in args.only:
            continue
        torch.manual_seed(0)
        fusers = FuserConfig(**{**dataclasses.asdict(DemoModelConfig().fusers), **overrides.get("fusers", {})})
        config = DemoModelConfig(fusers=fusers, preview_factors=bundled_config.preview_factors)
        parts = build_demo_components(config, args.out / name / "tokenizer")
        if overrides.get("text_encoder") == "bundled":
            parts.text_encoder.load_state_dict(bundled.text_encoder.state_dict())
        defaults = {**dataclasses.asdict(UnetTrainingConfig()), "steps": args.steps, "warmup_steps": args.steps // 10}
        training = UnetTrainingConfig(**{**defaults, **overrides.get("training", {})})
        for until in sorted(args.eval_at):
            began = time.perf_counter()
            train_unet(training, parts, bundled.vae.float(), args.out / name, until=until)
            trained = time.perf_counter() - began
            pipe = InstanceDiffusionPipeline(bundled.vae, parts.text_encoder, parts.tokenizer, parts.unet, None)
            scores = {kind: KindScore(kind) for kind in InstanceKind}
            for index in range(args.layouts):
                scene = generate(800_000 + index)  # a probe apart from the benchmark's held-out layouts
                for kind in InstanceKind:
                    image = pipe.render(request_for(scene, kind, steps=20)).image
                    score_image(scene, kind, image, scores[kind])
            row = {
                "variant": name,
                "step": until,
                "train_seconds": round(trained, 1),
                **{kind.value: round(scores[kind].score, 3) for kind in InstanceKind},
                "shape": round(float(np.mean([s.shape_accuracy for s in scores.values()])), 3),
                "found": round(float(np.mean([np.mean(s.found) for s in scores.values()])), 3),
            }
            print(json.dumps(row), flush=True)
            with results.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
            parts.unet.train()
            parts.text_encoder.train(training.train_text_encoder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
