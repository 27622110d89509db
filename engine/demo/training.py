"""Training the demo model, part 1: its VAE, on the synthetic world.

Reproducible from the config's seed: batch k is the scenes with seeds derived from (seed, k), so a run
that resumes from a checkpoint sees exactly the batches it would have seen. Checkpoints hold the weights
(safetensors) and the optimizer state (read back weights-only); a CSV log and a loss-curve PNG are kept
beside them.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from PIL import Image, ImageDraw

from common.atomic_files import atomic_path
from engine.demo.world import generate
from engine.weights_io import read_safetensors, read_safetensors_metadata, write_safetensors_atomic

# 64x64 images to a 16x16x4 latent (factor 4): small enough for a CPU-trained UNet, fine enough for shapes.
DEMO_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": (32, 64, 64),
    "down_block_types": ("DownEncoderBlock2D",) * 3,
    "up_block_types": ("UpDecoderBlock2D",) * 3,
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 64,
}


@dataclass(frozen=True)
class VaeTrainingConfig:
    seed: int = 0
    image_size: int = 64
    batch_size: int = 32
    steps: int = 3000
    learning_rate: float = 1e-3
    kl_weight: float = 1e-6
    warmup_steps: int = 100
    max_grad_norm: float = 1.0  # a run at a constant 1e-3 without clipping diverged at step ~1300
    checkpoint_every: int = 250
    vae: dict[str, Any] = field(default_factory=lambda: dict(DEMO_VAE))

    @classmethod
    def load(cls, path: Path) -> VaeTrainingConfig:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{**data, "vae": {**DEMO_VAE, **data.get("vae", {})}})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, default=list) + "\n", encoding="utf-8")


def learning_rate_at(step: int, peak: float, warmup: int, steps: int) -> float:
    """Linear warm-up, then cosine decay to a tenth: a pure function of the step, so resuming is exact."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def world_batch(config: VaeTrainingConfig, step: int) -> torch.Tensor:
    """Batch `step` in [-1, 1], (B, 3, H, W): the same for the same seed and step, whatever came before."""
    seeds = np.random.SeedSequence([config.seed, step]).generate_state(config.batch_size)
    images = np.stack([generate(int(s), size=config.image_size).image for s in seeds])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def train_vae(
    config: VaeTrainingConfig,
    out: Path,
    *,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    until: int | None = None,
    device: str | torch.device = "cpu",
) -> AutoencoderKL:
    """Train (or resume) the demo VAE in `out`; returns it.

    `stop_after` ends this call after that many steps (for tests); `until` ends the run at that step with a
    checkpoint, while the learning-rate schedule still spans `config.steps`.
    """
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "vae_config.json")
    torch.manual_seed(config.seed)
    vae: AutoencoderKL = AutoencoderKL(**config.vae)
    torch.nn.Module.to(vae, device)
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.learning_rate)
    start = _resume(vae, optimizer, out)
    if start:
        log(f"resuming at step {start}")
    log_file = out / "vae_loss.csv"
    vae.train()
    began = time.perf_counter()
    for step in range(start, min(config.steps, until or config.steps)):
        if stop_after is not None and step - start >= stop_after:
            break
        images = world_batch(config, step).to(device)
        posterior = vae.encode(images).latent_dist
        # The sample's noise comes from (seed, step) too, so a resumed run equals an uninterrupted one.
        noise = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        reconstruction = vae.decode(posterior.sample(generator=noise)).sample
        recon = torch.nn.functional.mse_loss(reconstruction, images)
        kl = posterior.kl().mean()
        loss = recon + config.kl_weight * kl
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(vae.parameters(), config.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, config.learning_rate, config.warmup_steps, config.steps)
        optimizer.step()
        with log_file.open("a", newline="") as handle:
            csv.writer(handle).writerow([step + 1, f"{recon.item():.6f}", f"{kl.item():.3f}"])
        if (step + 1) % config.checkpoint_every == 0 or step + 1 in (config.steps, until):
            set_scaling_factor(vae, measure_scaling_factor(vae, config))
            _checkpoint(vae, optimizer, out, step + 1)
            plot_loss(log_file, out / "vae_loss.png")
            rate = (step + 1 - start) / (time.perf_counter() - began)
            log(
                f"step {step + 1}/{config.steps}: reconstruction MSE {recon.item():.5f}, KL {kl.item():.1f}, {rate:.2f} steps/s"
            )
    vae.eval()
    return vae


@torch.no_grad()
def fit_preview_factors(
    vae: AutoencoderKL, config: VaeTrainingConfig, batches: int = 4
) -> tuple[tuple[float, ...], ...]:
    """A (latent channels x 3) matrix mapping scaled latents to RGB in [-1, 1], for previews without the VAE.

    Least squares between the latents and the images shrunk to latent size, on held-out batches.
    """
    scaling = float(vae.config["scaling_factor"])
    features, targets = [], []
    for k in range(batches):
        images = world_batch(config, 2_000_000_000 + k).to(vae.device)
        latents = vae.encode(images).latent_dist.mean * scaling
        small = torch.nn.functional.adaptive_avg_pool2d(images, latents.shape[-2:])
        features.append(latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]))
        targets.append(small.permute(0, 2, 3, 1).reshape(-1, 3))
    solution = torch.linalg.lstsq(torch.cat(features).double(), torch.cat(targets).double()).solution
    return tuple(tuple(float(v) for v in row) for row in solution)


def set_scaling_factor(vae: AutoencoderKL, value: float) -> None:
    vae.register_to_config(scaling_factor=value)  # type: ignore[no-untyped-call]  # unannotated in diffusers


@torch.no_grad()
def measure_scaling_factor(vae: AutoencoderKL, config: VaeTrainingConfig, batches: int = 4) -> float:
    """1 / std of the latents over held-out batches: scales them to unit variance, as SD's 0.18215 does."""
    held_out = 1_000_000_000  # batch numbers no run reaches
    latents = [vae.encode(world_batch(config, held_out + k).to(vae.device)).latent_dist.mean for k in range(batches)]
    return float(1.0 / torch.cat(latents).std())


def save_optimizer(optimizer: torch.optim.Optimizer, step: int, path: Path) -> None:
    """The optimizer state and the step it belongs to, replaced atomically."""
    with atomic_path(path) as tmp:
        torch.save({"step": step, "optimizer": optimizer.state_dict()}, tmp)


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path, log_file: Path) -> int:
    """Restore the optimizer (read weights-only); drop log rows written after that checkpoint. Returns its step."""
    saved = torch.load(path, weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    step = int(saved["step"])
    if log_file.exists():
        rows = [r for r in csv.reader(log_file.open()) if r and int(r[0]) <= step]
        with log_file.open("w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return step


def _checkpoint(vae: AutoencoderKL, optimizer: torch.optim.Optimizer, out: Path, step: int) -> None:
    scaling = str(vae.config["scaling_factor"])
    weights = {k: v.detach().cpu() for k, v in vae.state_dict().items()}
    write_safetensors_atomic(weights, out / "vae.safetensors", metadata={"step": str(step), "scaling_factor": scaling})
    save_optimizer(optimizer, step, out / "vae_optimizer.pt")


def _resume(vae: AutoencoderKL, optimizer: torch.optim.Optimizer, out: Path) -> int:
    weights, state = out / "vae.safetensors", out / "vae_optimizer.pt"
    if not (weights.exists() and state.exists()):
        return 0
    vae.load_state_dict(read_safetensors(weights))
    scaling = read_safetensors_metadata(weights).get("scaling_factor")
    if scaling is not None:
        set_scaling_factor(vae, float(scaling))
    return load_optimizer(optimizer, state, out / "vae_loss.csv")


def plot_loss(
    log_file: Path, image: Path, width: int = 640, height: int = 360, label: str = "reconstruction MSE"
) -> None:
    """A log-scale line plot of the first loss column (no plotting library needed)."""
    rows = [r for r in csv.reader(log_file.open()) if r]
    if len(rows) < 2:
        return
    steps = np.array([int(r[0]) for r in rows], dtype=float)
    values = np.log10(np.maximum([float(r[1]) for r in rows], 1e-12))
    window = max(1, len(values) // 100)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    steps = steps[window - 1 :]
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = 60, 20, width - 20, height - 40
    low = math.floor(smooth.min())
    high = max(math.ceil(smooth.max()), low + 1)

    def to_xy(s: float, v: float) -> tuple[float, float]:
        x = left + (s - steps[0]) / max(1.0, steps[-1] - steps[0]) * (right - left)
        y = bottom - (v - low) / (high - low) * (bottom - top)
        return x, y

    for decade in range(low, high + 1):
        y = to_xy(steps[0], decade)[1]
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((5, y - 6), f"1e{decade}", fill="black")
    draw.rectangle([left, top, right, bottom], outline="black")
    draw.line([to_xy(s, v) for s, v in zip(steps, smooth, strict=True)], fill=(30, 60, 220), width=2)
    draw.text((left, bottom + 10), f"step {int(steps[0])} .. {int(steps[-1])}   {label} (log10)", fill="black")
    canvas.save(image)
