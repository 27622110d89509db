"""Train the bundled demo model's parts on the synthetic world (CPU is enough; a GPU is faster).

    .venv/bin/python scripts/train_demo.py vae [--config resources/demo/vae_training.json] [--out runs/demo]

Runs resume from their last checkpoint in --out; the same config and seed give the same model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    vae = parts.add_parser("vae", help="train the VAE (64x64 images to a 16x16x4 latent)")
    vae.add_argument("--config", type=Path, default=ROOT / "resources" / "demo" / "vae_training.json")
    vae.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    args = parser.parse_args(argv)

    from engine.demo.training import VaeTrainingConfig, train_vae

    train_vae(VaeTrainingConfig.load(args.config), args.out)
    print(f"done: {args.out / 'vae.safetensors'} (loss curve {args.out / 'vae_loss.png'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
