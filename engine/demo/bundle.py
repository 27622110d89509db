"""Turning a training run into the shipped demo model: one folder with a manifest that says what it is.

The folder holds the configs, the fp16 weights, the tokenizer and `manifest.json`: every file's SHA-256,
the training configs and the commands that reproduce the run, the steps each part trained and its final
loss, and the placement evaluation (filled in by `record_evaluation`).
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

from common.atomic_files import write_text_atomic
from engine.demo.model import DemoModelConfig, build_demo_components, save_demo
from engine.demo.training import VaeTrainingConfig, fit_preview_factors, set_scaling_factor
from engine.demo.unet_training import UnetTrainingConfig
from engine.weights_io import read_safetensors, read_safetensors_metadata, sha256_file

MANIFEST = "manifest.json"
MAX_BYTES = 30 * 1024 * 1024  # the shipped model's budget


class BundleError(Exception):
    pass


def bundle_demo(run: Path, dest: Path, commands: list[str]) -> dict[str, Any]:
    """Build the demo model folder `dest` from the trained parts in `run`; returns the manifest."""
    for needed in ("vae.safetensors", "vae_config.json", "unet.safetensors", "text_encoder.safetensors"):
        if not (run / needed).exists():
            raise BundleError(f"{run / needed} is missing: train the VAE, then the UNet (scripts/train_demo.py)")
    vae_training = VaeTrainingConfig.load(run / "vae_config.json")
    vae_file = run / "vae.safetensors"
    scaling = float(read_safetensors_metadata(vae_file).get("scaling_factor", 1.0))
    vae: AutoencoderKL = AutoencoderKL(**vae_training.vae)
    vae.load_state_dict(read_safetensors(vae_file))
    set_scaling_factor(vae, scaling)
    vae.eval()

    previous = read_manifest(dest) if (dest / MANIFEST).exists() else None
    base = DemoModelConfig(vae={**vae_training.vae, "scaling_factor": scaling})
    with tempfile.TemporaryDirectory() as scratch:
        components = build_demo_components(base, Path(scratch) / "tokenizer")
        components.vae = vae
        components.unet.load_state_dict(read_safetensors(run / "unet.safetensors"))
        components.text_encoder.load_state_dict(read_safetensors(run / "text_encoder.safetensors"))
        config = DemoModelConfig(
            vae=base.vae, preview_factors=fit_preview_factors(vae, vae_training), unet=base.unet, text=base.text
        )
        save_demo(components, config, dest)

    files = sorted(p for p in dest.rglob("*") if p.is_file() and p.name != MANIFEST)
    total = sum(p.stat().st_size for p in files)
    if total > MAX_BYTES:
        raise BundleError(f"the bundled model is {total / 2**20:.1f} MiB, over the {MAX_BYTES / 2**20:.0f} MiB budget")
    unet_training = UnetTrainingConfig.load(run / "unet_training.json")
    manifest: dict[str, Any] = {
        "name": "Instance Studio demo model (synthetic shape world, 64x64)",
        "files": {str(p.relative_to(dest)): sha256_file(p) for p in files},
        "total_bytes": total,
        "parameters": {
            name: sum(int(t.numel()) for t in getattr(components, name).state_dict().values())
            for name in ("vae", "text_encoder", "unet")
        },
        "training": {
            "vae": {
                "config": json.loads((run / "vae_config.json").read_text(encoding="utf-8")),
                "steps_trained": int(read_safetensors_metadata(vae_file).get("step", 0)),
                "final_loss": _final_loss(run / "vae_loss.csv"),
                "loss": "reconstruction MSE (images in [-1, 1]), mean of the last 100 steps",
            },
            "unet": {
                "config": json.loads((run / "unet_training.json").read_text(encoding="utf-8")),
                "steps_trained": int(read_safetensors_metadata(run / "unet.safetensors").get("step", 0)),
                "final_loss": _final_loss(run / "unet_loss.csv"),
                "loss": "epsilon MSE, mean of the last 100 steps",
                "steps_planned": unet_training.steps,
            },
            "commands": commands,
        },
        "evaluation": None,
    }
    _carry_unchanged_records(manifest, previous, unet_training)
    write_manifest(dest, manifest)
    return manifest


def _carry_unchanged_records(
    manifest: dict[str, Any], previous: dict[str, Any] | None, unet_training: UnetTrainingConfig
) -> None:
    """A part whose file is byte-for-byte the previous bundle's keeps that bundle's training record (a run that
    reuses the shipped VAE has no VAE loss log of its own); a text encoder taken from a model folder says so."""
    training = manifest["training"]
    if unet_training.text_encoder_from:
        training["text_encoder"] = {
            "from": unet_training.text_encoder_from,
            "frozen": not unet_training.train_text_encoder,
        }
    if previous is None:
        return

    def unchanged(name: str) -> bool:
        return bool(previous.get("files", {}).get(name) == manifest["files"].get(name))

    if "text_encoder" in training:
        training["text_encoder"]["unchanged_from_previous"] = unchanged("text_encoder.safetensors")
    earlier_vae = previous.get("training", {}).get("vae")
    if earlier_vae and training["vae"]["final_loss"] is None and unchanged("vae.safetensors"):
        training["vae"] = {**earlier_vae, "unchanged_from_previous": True}


def read_manifest(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return data


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    # A reader sees the old manifest or the new one, never half.
    write_text_atomic(folder / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def record_evaluation(folder: Path, evaluation: dict[str, Any]) -> None:
    manifest = read_manifest(folder)
    manifest["evaluation"] = evaluation
    write_manifest(folder, manifest)


def verify_files(folder: Path) -> list[str]:
    """Files whose SHA-256 no longer matches the manifest (empty when the model is intact)."""
    manifest = read_manifest(folder)
    return [name for name, digest in manifest["files"].items() if sha256_file(folder / name) != digest]


def _final_loss(log: Path, last: int = 100) -> float | None:
    if not log.exists():
        return None
    with log.open(newline="") as handle:
        values = [float(row[1]) for row in csv.reader(handle) if len(row) >= 2]
    return float(np.mean(values[-last:])) if values else None
