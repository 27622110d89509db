"""Tiny SD1.5-shaped components, and the on-disk layouts users have SD1.5 in, for loading tests without weights.

The tiny UNet keeps SD1.5's block structure (4 levels, 2 layers per block, 3 cross-attention levels) with
32 channels, so the official LDM key names (tests/engine/data/instdiff_sd15_ldm_to_diffusers_unet.json)
name its tensors too: that is how the tests build LDM-layout single files and fake official checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from engine.checkpoint import adapter_part, load_weights
from engine.model_configs import load_tokenizer
from engine.models.builder import InstanceUNetConfig, build_instance_unet
from engine.models.unifusion import UniFusionConfig
from engine.pipeline import InstanceDiffusionPipeline
from engine.sd15_source import SD15_CONFIGS
from tests.engine.parity import LDM_TO_DIFFUSERS_FILE

TINY_UNET: Final[dict[str, Any]] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 32, 32, 32),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
}
TINY_POSITION_NET: Final = UniFusionConfig(
    text_dim=32,
    out_dim=32,
    mid_dim=64,
    max_objs=30,
    fourier_freqs=16,
    scribble_points=20,
    polygon_points=256,
    seg_size=64,
    seg_tokens=64,
    convnext_depths=(1, 1, 1, 1),
    convnext_dims=(8, 8, 16, 64),
)
TINY_CONFIG: Final = InstanceUNetConfig(unet=TINY_UNET, position_net=TINY_POSITION_NET)
# Four levels so the latent scale factor is 8, as in SD.
TINY_VAE: Final[dict[str, Any]] = {
    "block_out_channels": (32, 32, 32, 32),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 64,
}
# SD's vocabulary size and context length, so the real bundled tokenizer can feed it.
TINY_CLIP: Final[dict[str, Any]] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "projection_dim": 32,
    "vocab_size": 49408,
    "max_position_embeddings": 77,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}
CACHE_REPO: Final = "runwayml/stable-diffusion-v1-5"
CACHE_COMMIT: Final = "1d0c4ebf6ff58a5caecab40fa1406526bca4b5b9"


@dataclass
class TinySd:
    """A plain (non-gated) UNet, as SD1.5 ships, with its VAE and text encoder."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel


def build_tiny_sd(seed: int = 0) -> TinySd:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**TINY_UNET)
    vae = AutoencoderKL(**TINY_VAE)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_CLIP))
    # Non-trivial values everywhere (diffusers zero-initialises some layers), so a wrong mapping shows.
    with torch.no_grad():
        for model in (unet, vae, text_encoder):
            for param in model.parameters():
                param.add_(torch.randn_like(param) * 0.01)
    models: list[torch.nn.Module] = [unet, vae, text_encoder]
    for model in models:
        model.eval()
    return TinySd(unet, vae, text_encoder)


def write_diffusers_folder(parts: TinySd, folder: Path) -> Path:
    """The layout of an SD1.5 diffusers folder: model_index, per-component configs and safetensors, tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    parts.unet.save_pretrained(folder / "unet", safe_serialization=True)
    parts.vae.save_pretrained(folder / "vae", safe_serialization=True)
    parts.text_encoder.save_pretrained(folder / "text_encoder")
    shutil.copy(SD15_CONFIGS / "model_index.json", folder / "model_index.json")
    shutil.copytree(SD15_CONFIGS / "scheduler", folder / "scheduler")
    shutil.copytree(SD15_CONFIGS / "tokenizer", folder / "tokenizer")
    return folder


def write_cache_entry(folder: Path, cache_root: Path, repo: str = CACHE_REPO, commit: str = CACHE_COMMIT) -> Path:
    """Lay `folder` out as huggingface_hub does: blobs named by hash, a snapshot of symlinks, refs/main."""
    entry = cache_root / ("models--" + repo.replace("/", "--"))
    snapshot = entry / "snapshots" / commit
    (entry / "blobs").mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        blob = entry / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copy(file, blob)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (entry / "refs").mkdir(exist_ok=True)
    (entry / "refs" / "main").write_text(commit, encoding="utf-8")
    return entry


# --- LDM names ----------------------------------------------------------------------------------


@cache
def diffusers_to_ldm_unet() -> dict[str, str]:
    """Our UNet's names -> the official (LDM, unprefixed) ones, for the SD1.5 block structure."""
    reference: dict[str, str] = json.loads(LDM_TO_DIFFUSERS_FILE.read_text())
    return {(f"scaleu.{v}" if v.startswith("scaleu_") else v): k for k, v in reference.items()}


def unet_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A UNet state dict under official names; position_net keys keep theirs (UniFusion's names are official)."""
    names = diffusers_to_ldm_unet()
    return {(k if k.startswith("position_net.") else names[k]): v for k, v in state.items()}


def _up(kind: str) -> Callable[[re.Match[str]], str]:
    """decoder.up_blocks.i -> decoder.up.(3 - i): LDM numbers the decoder levels from the bottom."""
    return lambda m: f"decoder.up.{3 - int(m[1])}.{kind}" + (f".{m[2]}." if kind == "block" else ".")


_VAE_RULES: Final[list[tuple[str, str | Callable[[re.Match[str]], str]]]] = [
    (r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.(\d+)\.", lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.group_norm\.", r"\1.mid.attn_1.norm."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_([qkv])\.", r"\1.mid.attn_1.\2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_out\.0\.", r"\1.mid.attn_1.proj_out."),
    (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2."),
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample."),
    (r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", _up("block")),
    (r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", _up("upsample")),
]


def vae_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A 4-level VAE state dict under LDM names (mid attention as 1x1 convolutions), as SD1.5 files store it."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key
        for pattern, replacement in _VAE_RULES:
            name = re.sub(pattern, replacement, name)
        name = name.replace(".conv_shortcut.", ".nin_shortcut.")
        if re.search(r"mid\.attn_1\.(q|k|v|proj_out)\.weight$", name):
            value = value[:, :, None, None]
        out[name] = value
    return out


def ldm_single_file_state(parts: TinySd) -> dict[str, torch.Tensor]:
    """An SD1.5-style single checkpoint (`model.diffusion_model.`, `first_stage_model.`, `cond_stage_model.`)."""
    state = {f"model.diffusion_model.{k}": v for k, v in unet_to_ldm(parts.unet.state_dict()).items()}
    state |= {f"first_stage_model.{k}": v for k, v in vae_to_ldm(parts.vae.state_dict()).items()}
    state |= {f"cond_stage_model.transformer.text_model.{k}": v for k, v in parts.text_encoder.state_dict().items()}
    return {k: v.contiguous() for k, v in state.items()}


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    """A tiny instance UNet whose zero-initialised parts (gates, nulls, ScaleU) are random: grounding acts."""
    torch.manual_seed(seed)
    unet = build_instance_unet(TINY_CONFIG)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.startswith(("position_net.null", "scaleu.")) or name.endswith(("alpha_attn", "alpha_dense")):
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    return unet.eval()


def random_added_parts(seed: int = 1) -> dict[str, torch.Tensor]:
    """Non-zero values for every fuser, UniFusion and ScaleU tensor of the tiny instance UNet (our names)."""
    torch.manual_seed(seed)
    unet = build_instance_unet(TINY_CONFIG)
    return {k: torch.randn_like(v) * 0.05 for k, v in unet.state_dict().items() if adapter_part(k)}


def fake_official_checkpoint(parts: TinySd, added: dict[str, torch.Tensor], path: Path) -> Path:
    """An official-layout `.pth` ({"model": LDM UNet state}) holding the base UNet and the added parts."""
    state = unet_to_ldm(parts.unet.state_dict()) | unet_to_ldm(added)
    torch.save({"model": state}, path)
    return path


def tiny_pipeline(seed: int = 3) -> InstanceDiffusionPipeline:
    """A pipeline on tiny components whose adapter parts are random, so grounding visibly acts."""
    parts = build_tiny_sd(seed=seed)
    unet = build_instance_unet(TINY_CONFIG)
    load_weights(unet, parts.unet.state_dict(), "tiny", partial=True)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.endswith(("alpha_attn", "alpha_dense")) or name.startswith("position_net.null"):
                param.copy_(torch.randn(param.shape, generator=generator))
    tokenizer = load_tokenizer(SD15_CONFIGS / "tokenizer")
    return InstanceDiffusionPipeline(parts.vae, parts.text_encoder, tokenizer, unet.eval())
