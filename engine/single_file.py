"""A single LDM-layout `.safetensors` / `.ckpt` file (what most SD1.5 fine-tunes ship as), read with the
SD1.5 configs bundled in resources/sd15/ (or the ones `Sd15Source.configs` names) instead of fetched ones.

The file is read by us (safetensors, or a .ckpt through the restricted unpickler, zip bombs refused); the
key mapping is diffusers' own: `convert_ldm_unet_checkpoint` for the UNet (filled into the instance UNet),
`AutoencoderKL.from_single_file` and `create_diffusers_clip_model_from_ldm` for the VAE and CLIP, given the
already-read tensors and the local configs with `local_files_only=True`. tests/engine/test_single_file.py
checks they give the same tensors as the diffusers folder of the same model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, cast

import torch
from diffusers.loaders.single_file_utils import (
    SingleFileComponentError,
    convert_ldm_unet_checkpoint,
    create_diffusers_clip_model_from_ldm,
)
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn
from transformers import CLIPTextModel

from engine.checkpoint import LDM_UNET_PREFIX, CheckpointMismatchError, key_listing
from engine.model_config_check import SD_TEXT_CONFIG, SD_VAE_CONFIG, read_checked_config
from engine.model_configs import LOAD_ERRORS, read_model_config, short_error
from engine.models.builder import InstanceUNetConfig
from engine.sd15_source import CONFIGS_HINT, SD15_HINT, Sd15Source
from engine.unet_loading import meta_tensors, read_state, unet_from_base
from engine.weights_io import CorruptWeightsError, WeightFileError

__all__ = ["LDM_CLIP_PREFIX", "LDM_VAE_PREFIX", "from_single_file"]

LDM_VAE_PREFIX: Final = "first_stage_model."
LDM_CLIP_PREFIX: Final = "cond_stage_model.transformer."
# How diffusers reports a tensor of the wrong shape (load_model_dict_into_meta).
_WRONG_SHAPE: Final = re.compile(
    r"because (\S+) expected shape (torch\.Size\(\[[^\]]*\]\)), but got (torch\.Size\(\[[^\]]*\]\))"
)


def _ldm_part(state: Mapping[str, torch.Tensor], prefix: str, what: str, file: Path) -> None:
    if not any(k.startswith(prefix) for k in state):
        raise CorruptWeightsError(
            file, f"it holds no {what} weights ({prefix}*): not a Stable Diffusion 1.x checkpoint; {SD15_HINT}"
        )


def _component_error(file: Path, what: str, exc: BaseException) -> WeightFileError:
    """diffusers' complaint about one component of the file, as one short line naming the file."""
    shape = _WRONG_SHAPE.search(str(exc))
    if shape is not None:
        name, expected, got = shape.groups()
        return CheckpointMismatchError(file, f"the {what}'s {name} has shape {got}, the configs expect {expected}")
    return CorruptWeightsError(file, f"could not load the {what} ({short_error(exc)})")


def _loaded(model: nn.Module, file: Path, what: str) -> None:
    missing = meta_tensors(model)  # diffusers leaves what the file lacks on the meta device
    if missing:
        raise CheckpointMismatchError(file, f"the {what} lacks {len(missing)} tensors: {key_listing(missing)}")


def _vae(state: dict[str, torch.Tensor], configs: Path, file: Path) -> AutoencoderKL:
    read_checked_config(configs / "vae" / "config.json", SD_VAE_CONFIG, hint=CONFIGS_HINT)
    try:
        vae = AutoencoderKL.from_single_file(state, config=str(configs), subfolder="vae", local_files_only=True)
    except (*LOAD_ERRORS, SingleFileComponentError) as exc:
        raise _component_error(file, "VAE", exc) from exc
    _loaded(vae, file, "VAE")
    return cast(AutoencoderKL, vae)


def _text_encoder(state: dict[str, torch.Tensor], configs: Path, file: Path) -> CLIPTextModel:
    read_checked_config(configs / "text_encoder" / "config.json", SD_TEXT_CONFIG, hint=CONFIGS_HINT)
    try:
        text_encoder = create_diffusers_clip_model_from_ldm(  # type: ignore[no-untyped-call]
            CLIPTextModel, state, subfolder="text_encoder", config=str(configs), local_files_only=True
        )
    except (*LOAD_ERRORS, SingleFileComponentError) as exc:
        raise _component_error(file, "text encoder", exc) from exc
    _loaded(text_encoder, file, "text encoder")
    return cast(CLIPTextModel, text_encoder)


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
    try:
        # diffusers' own conversion, into the instance UNet (diffusers' from_single_file would build a stock
        # UNet first: a second copy). extract_ema: a training checkpoint's EMA weights are the ones to render.
        unet_state = convert_ldm_unet_checkpoint(state, unet_kwargs, extract_ema=True)  # type: ignore[no-untyped-call]
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        raise CorruptWeightsError(file, f"its layout is not Stable Diffusion 1.x ({short_error(exc)})") from exc
    config = unet_config or InstanceUNetConfig(unet=unet_kwargs)
    unet = unet_from_base(config, unet_state, file)
    del unet_state
    # VAE and CLIP through diffusers' single-file loading, with the configs given (never fetched).
    vae = _vae(state, configs, file)
    text_encoder = _text_encoder(state, configs, file)
    return unet, config, vae, text_encoder
