"""A single LDM-layout `.safetensors` / `.ckpt` file (what most SD1.5 fine-tunes ship as), read with the
SD1.5 configs bundled in resources/sd15/ (or the ones `Sd15Source.configs` names) instead of fetched ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel

from engine.checkpoint import LDM_UNET_PREFIX, load_weights
from engine.model_config_check import SD_TEXT_CONFIG, read_checked_config
from engine.model_configs import LOAD_ERRORS, read_model_config, short_error
from engine.models.builder import InstanceUNetConfig
from engine.sd15_source import CONFIGS_HINT, SD15_HINT, Sd15Source
from engine.unet_loading import read_state, unet_from_base
from engine.weights_io import CorruptWeightsError

__all__ = ["LDM_CLIP_PREFIX", "LDM_VAE_PREFIX", "from_single_file"]

LDM_VAE_PREFIX: Final = "first_stage_model."
LDM_CLIP_PREFIX: Final = "cond_stage_model.transformer."


def _ldm_part(state: Mapping[str, torch.Tensor], prefix: str, what: str, file: Path) -> None:
    if not any(k.startswith(prefix) for k in state):
        raise CorruptWeightsError(
            file, f"it holds no {what} weights ({prefix}*): not a Stable Diffusion 1.x checkpoint; {SD15_HINT}"
        )


def _clip_keys_for(model: nn.Module, converted: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Match `text_model.` prefixes to this transformers version (flat since 5.6) and drop derived buffers."""
    expected = set(model.state_dict())
    flat = not any(k.startswith("text_model.") for k in expected)
    out: dict[str, torch.Tensor] = {}
    for key, value in converted.items():
        name = (
            key.removeprefix("text_model.")
            if flat
            else (key if key.startswith("text_model.") else f"text_model.{key}")
        )
        if name.endswith("position_ids") and name not in expected:
            continue  # a non-persistent buffer in recent transformers; old checkpoints still store it
        out[name] = value
    return out


def from_single_file(
    source: Sd15Source, unet_config: InstanceUNetConfig | None
) -> tuple[UNet2DConditionModel, InstanceUNetConfig, AutoencoderKL, CLIPTextModel]:
    file = source.path
    state = read_state(file, SD15_HINT)
    _ldm_part(state, LDM_UNET_PREFIX, "UNet", file)
    _ldm_part(state, LDM_VAE_PREFIX, "VAE", file)
    _ldm_part(state, LDM_CLIP_PREFIX, "text encoder", file)
    configs = source.configs
    unet_kwargs = read_model_config(configs / "unet" / "config.json", UNet2DConditionModel)
    vae_kwargs = read_model_config(configs / "vae" / "config.json", AutoencoderKL)
    try:
        # extract_ema: a full training checkpoint also holds EMA weights, which are the ones to render with.
        unet_state = convert_ldm_unet_checkpoint(state, unet_kwargs, extract_ema=True)  # type: ignore[no-untyped-call]
        vae_state = convert_ldm_vae_checkpoint(state, vae_kwargs)  # type: ignore[no-untyped-call]
        clip_state = convert_ldm_clip_checkpoint(state)  # type: ignore[no-untyped-call]
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        raise CorruptWeightsError(file, f"its layout is not Stable Diffusion 1.x ({short_error(exc)})") from exc
    del state
    config = unet_config or InstanceUNetConfig(unet=unet_kwargs)
    unet = unet_from_base(config, unet_state, file)

    with torch.device("meta"):
        vae = AutoencoderKL(**vae_kwargs)
    load_weights(vae, vae_state, file)
    read_checked_config(configs / "text_encoder" / "config.json", SD_TEXT_CONFIG, hint=CONFIGS_HINT)
    try:
        text_config = CLIPTextConfig.from_pretrained(configs / "text_encoder", local_files_only=True)
    except LOAD_ERRORS as exc:
        raise CorruptWeightsError(configs / "text_encoder" / "config.json", short_error(exc)) from exc
    # Built on the CPU, not meta: CLIP derives its position_ids buffer at construction.
    text_encoder = CLIPTextModel(text_config)
    load_weights(text_encoder, _clip_keys_for(text_encoder, clip_state), file)
    return unet, config, vae, text_encoder
