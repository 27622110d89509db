"""Train the bundled demo model's parts on the synthetic world (CPU is enough; a GPU is faster).

    .venv/bin/python scripts/train_demo.py vae  [--config resources/demo/vae_training.json]  [--out runs/demo]
    .venv/bin/python scripts/train_demo.py unet [--config resources/demo/unet_training.json] [--out runs/demo]
    .venv/bin/python scripts/train_demo.py bundle [--out runs/demo] [--to resources/demo/model] [--evaluate 200]

The UNet trains on the latents of the VAE trained first in the same --out folder. `bundle` turns the run
into the shipped model folder (fp16 weights, tokenizer, manifest with SHA-256s, training commands and
losses) and, with --evaluate N, measures placement on N held-out layouts into the manifest.

Runs resume from their last checkpoint in --out; the same config and seed give the same model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from resources import resource_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    vae = parts.add_parser("vae", help="train the VAE (64x64 images to a 16x16x4 latent)")
    vae.add_argument("--config", type=Path, default=resource_path("demo", "vae_training.json"))
    vae.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    vae.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    vae.add_argument("--until", type=int, help="end the run at this step (the schedule still spans the config)")
    unet = parts.add_parser("unet", help="train the grounded UNet and the text encoder on the VAE's latents")
    unet.add_argument("--config", type=Path, default=resource_path("demo", "unet_training.json"))
    unet.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    unet.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    unet.add_argument("--until", type=int, help="end the run at this step (the schedule still spans the config)")
    bundle = parts.add_parser("bundle", help="build the shipped model folder from a finished run")
    bundle.add_argument("--out", type=Path, default=ROOT / "runs" / "demo", help="the training run")
    bundle.add_argument("--to", type=Path, default=ROOT / "resources" / "demo" / "model")
    bundle.add_argument("--evaluate", type=int, default=0, metavar="N", help="placement over N held-out layouts")
    bundle.add_argument("--steps", type=int, default=20, help="sampling steps for the evaluation")
    args = parser.parse_args(argv)
    if args.part == "bundle":
        return _bundle(args)

    from engine.devices import select_device

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
    config = UnetTrainingConfig.load(args.config)
    if config.text_encoder_from:
        from engine.demo.model import load_demo

        source = ROOT / config.text_encoder_from
        print(f"text encoder from {source}" + ("" if config.train_text_encoder else " (frozen)"))
        components.text_encoder.load_state_dict(load_demo(source)[0].text_encoder.state_dict())
    train_unet(config, components, vae, args.out, until=args.until, device=device)
    print(f"done: {args.out / 'unet.safetensors'} (loss curve {args.out / 'unet_loss.png'})")
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from engine.demo.bundle import BundleError, bundle_demo, record_evaluation

    vae_until = _stopped_early(args.out / "vae.safetensors", args.out / "vae_config.json")
    unet_until = _stopped_early(args.out / "unet.safetensors", args.out / "unet_training.json")
    commands = [
        "python scripts/train_demo.py vae" + (f" --until {vae_until}" if vae_until else ""),
        "python scripts/train_demo.py unet" + (f" --until {unet_until}" if unet_until else ""),
        "python scripts/train_demo.py bundle" + (f" --evaluate {args.evaluate}" if args.evaluate else ""),
    ]
    try:
        manifest = bundle_demo(args.out, args.to, commands)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"bundled {args.to}: {manifest['total_bytes'] / 2**20:.1f} MiB")
    if args.evaluate:
        from benchmarks.placement import render_times
        from engine.demo.model import load_demo
        from engine.demo.placement import evaluation_report, report_table
        from engine.pipeline import InstanceDiffusionPipeline

        components, _ = load_demo(args.to)
        pipe = InstanceDiffusionPipeline(
            components.vae, components.text_encoder, components.tokenizer, components.unet, preview_factors=None
        )
        report = evaluation_report(lambda request: pipe.render(request).image, layouts=args.evaluate, steps=args.steps)
        report["render_seconds"] = render_times(pipe, (args.steps, 50))
        record_evaluation(args.to, report)
        print(report_table(report))
    return 0


def _stopped_early(weights: Path, config: Path) -> int | None:
    """The step a run was ended at with --until, if it ended before its config's last step."""
    import json

    from engine.weights_io import read_safetensors_metadata

    step = int(read_safetensors_metadata(weights).get("step", 0))
    planned = int(json.loads(config.read_text(encoding="utf-8"))["steps"])
    return step if step < planned else None


if __name__ == "__main__":
    sys.exit(main())
