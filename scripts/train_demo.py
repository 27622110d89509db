"""Train the bundled demo model's parts on the synthetic world (CPU is enough; a GPU is faster).

    .venv/bin/python scripts/train_demo.py vae  [--config resources/demo/vae_training.json]  [--out runs/demo]
    .venv/bin/python scripts/train_demo.py unet [--config resources/demo/unet_training.json] [--out runs/demo]

The UNet trains on the latents of the VAE trained first in the same --out folder.

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
    vae.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    vae.add_argument("--until", type=int, help="end the run at this step (the schedule still spans the config)")
    unet = parts.add_parser("unet", help="train the grounded UNet and the text encoder on the VAE's latents")
    unet.add_argument("--config", type=Path, default=ROOT / "resources" / "demo" / "unet_training.json")
    unet.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    unet.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    unet.add_argument("--until", type=int, help="end the run at this step (the schedule still spans the config)")
    args = parser.parse_args(argv)

    from engine.loading import select_device

    try:
        device = select_device(args.device)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"training on {device}")
    if args.part == "vae":
        from engine.demo.training import VaeTrainingConfig, train_vae

        train_vae(VaeTrainingConfig.load(args.config), args.out, until=args.until, device=device)
        print(f"done: {args.out / 'vae.safetensors'} (loss curve {args.out / 'vae_loss.png'})")
        return 0

    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    from engine.demo.model import DemoModelConfig, build_demo_components
    from engine.demo.training import VaeTrainingConfig, set_scaling_factor
    from engine.demo.unet_training import UnetTrainingConfig, train_unet
    from engine.weights_io import read_safetensors, read_safetensors_metadata

    vae_file = args.out / "vae.safetensors"
    if not vae_file.exists():
        print(f"error: train the VAE first: {vae_file} is missing", file=sys.stderr)
        return 1
    vae = AutoencoderKL(**VaeTrainingConfig.load(args.out / "vae_config.json").vae)
    vae.load_state_dict(read_safetensors(vae_file))
    set_scaling_factor(vae, float(read_safetensors_metadata(vae_file).get("scaling_factor", 1.0)))
    components = build_demo_components(DemoModelConfig(), args.out / "tokenizer")
    train_unet(UnetTrainingConfig.load(args.config), components, vae, args.out, until=args.until, device=device)
    print(f"done: {args.out / 'unet.safetensors'} (loss curve {args.out / 'unet_loss.png'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
