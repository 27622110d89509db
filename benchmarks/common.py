"""Shared helpers for the benchmarks: random-weight SD1.5-shaped models in a few sizes, timing, tables.

The models keep SD1.5's block structure (4 levels, 2 layers per block, 3 cross-attention levels, a gated
UNet with UniFusion and ScaleU) at reduced widths, so they run on a CPU while the UNet still dominates the
cost of a render. The weights are random (with non-trivial adapter gates, so grounding acts): the figures
measure speed, never image quality.
"""

# ruff: noqa: E402  (the offline switch comes before the libraries are imported)

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.offline import enforce_offline

enforce_offline()  # as main.py does, before diffusers and transformers are imported

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from engine.checkpoint import load_weights
from engine.model_configs import load_tokenizer
from engine.models.builder import InstanceUNetConfig, build_instance_unet
from engine.models.unifusion import UniFusionConfig
from engine.pipeline import InstanceDiffusionPipeline
from engine.sd15_source import SD15_CONFIGS

T = TypeVar("T")

# A spread of box instances (normalised x0, y0, x1, y1) for the layouts the benchmarks render.
BOXES: tuple[tuple[float, float, float, float], ...] = (
    (0.05, 0.05, 0.35, 0.40),
    (0.40, 0.05, 0.70, 0.35),
    (0.72, 0.10, 0.95, 0.45),
    (0.05, 0.45, 0.30, 0.90),
    (0.32, 0.40, 0.62, 0.70),
    (0.65, 0.50, 0.95, 0.95),
    (0.30, 0.72, 0.60, 0.98),
    (0.10, 0.20, 0.55, 0.55),
    (0.45, 0.25, 0.85, 0.65),
    (0.20, 0.60, 0.80, 0.85),
)
CAPTIONS: tuple[str, ...] = (
    "a red apple",
    "a blue mug",
    "a green plant",
    "a yellow lemon",
    "a black cat",
    "a white plate",
    "a brown loaf of bread",
    "a silver spoon",
    "an orange",
    "a wooden bowl",
)


@dataclass(frozen=True)
class BenchSize:
    """Widths of one benchmark model; the block structure is always SD1.5's."""

    name: str
    unet_channels: tuple[int, int, int, int]
    cross_attention_dim: int  # also the text encoder's hidden size and UniFusion's text/out width
    text_layers: int
    position_mid_dim: int
    vae_channels: tuple[int, int, int, int]
    image_side: int  # pixels; the latent side is image_side // 8

    @property
    def latent_side(self) -> int:
        return self.image_side // 8

    def describe(self) -> str:
        unet = ",".join(str(c) for c in self.unet_channels)
        return (
            f"size {self.name}: UNet channels ({unet}), cross-attention {self.cross_attention_dim}, "
            f"{self.image_side}x{self.image_side} image ({self.latent_side}x{self.latent_side} latent)"
        )


SIZES: dict[str, BenchSize] = {
    # For the smoke test: the tests' tiny model at an 8x8 latent; seconds in all.
    "tiny": BenchSize("tiny", (32, 32, 32, 32), 32, 2, 64, (32, 32, 32, 32), 64),
    # The default: a fifth of SD1.5's widths (8 heads per attention, as SD1.5) at a 32x32 latent. At this
    # latent size attention over the 1024 tokens of the top level costs about as much as the convolutions.
    "small": BenchSize("small", (64, 128, 256, 256), 256, 4, 512, (32, 32, 64, 64), 256),
    # Double the widths and a 48x48 latent (384x384 image): about 4x slower than small.
    "medium": BenchSize("medium", (128, 256, 512, 512), 512, 6, 1024, (32, 64, 64, 64), 384),
}


def unet_config(size: BenchSize) -> InstanceUNetConfig:
    unet: dict[str, Any] = {
        "sample_size": size.latent_side,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": size.unet_channels,
        "layers_per_block": 2,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": size.cross_attention_dim,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    }
    position_net = UniFusionConfig(
        text_dim=size.cross_attention_dim,
        out_dim=size.cross_attention_dim,
        mid_dim=size.position_mid_dim,
        max_objs=30,
        fourier_freqs=16,
        scribble_points=20,
        polygon_points=256,
        seg_size=64,
        seg_tokens=64,
        convnext_depths=(1, 1, 1, 1),
        convnext_dims=(8, 8, 16, 64),
    )
    return InstanceUNetConfig(unet=unet, position_net=position_net)


def _perturb(models: Sequence[torch.nn.Module], generator: torch.Generator, scale: float = 0.01) -> None:
    """Non-trivial values everywhere (diffusers zero-initialises some layers)."""
    with torch.no_grad():
        for model in models:
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * scale)


def build_pipeline(size: BenchSize, seed: int = 0) -> InstanceDiffusionPipeline:
    """An InstanceDiffusionPipeline on random SD1.5-shaped parts of `size` (the tests' recipe, resized)."""
    config = unet_config(size)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    base = UNet2DConditionModel(**config.unet)
    vae = AutoencoderKL(
        block_out_channels=size.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=size.image_side,
    )
    dim = size.cross_attention_dim
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=dim,
            intermediate_size=4 * dim,
            num_hidden_layers=size.text_layers,
            num_attention_heads=max(dim // 64, 4),
            projection_dim=dim,
            vocab_size=49408,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
        )
    )
    _perturb([base, vae, text_encoder], generator)

    unet = build_instance_unet(config)
    load_weights(unet, base.state_dict(), "benchmark", partial=True)
    del base
    with torch.no_grad():  # a "trained" adapter: the fusers and null features must act
        for name, param in unet.named_parameters():
            if name.endswith(("alpha_attn", "alpha_dense")) or name.startswith("position_net.null"):
                param.copy_(torch.randn(param.shape, generator=generator))
    models: list[torch.nn.Module] = [unet, vae, text_encoder]
    for model in models:
        model.eval()
    tokenizer = load_tokenizer(SD15_CONFIGS / "tokenizer")
    return InstanceDiffusionPipeline(vae, text_encoder, tokenizer, unet)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def relative_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, in float64."""
    a64, b64 = a.double(), b.double()
    return float(torch.linalg.vector_norm(a64 - b64) / torch.linalg.vector_norm(b64).clamp_min(1e-30))


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def add_common_args(parser: argparse.ArgumentParser, steps: int, repeats: int) -> None:
    parser.add_argument("--size", choices=sorted(SIZES), default="small", help="model size (default: small)")
    parser.add_argument("--steps", type=int, default=steps, help=f"sampler steps (default: {steps})")
    parser.add_argument("--repeats", type=int, default=repeats, help=f"timed runs per path (default: {repeats})")
    parser.add_argument("--seed", type=int, default=7, help="render seed (default: 7)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")


def environment(args: argparse.Namespace) -> str:
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    python = sys.version.split()[0]
    # Other processes on the machine skew the figures; the load average shows whether there were any.
    load = f", load average {os.getloadavg()[0]:.2f} at start" if hasattr(os, "getloadavg") else ""
    return f"torch {torch.__version__} on CPU, {torch.get_num_threads()} threads, Python {python}{load}"
