"""Load the models offline: SD1.5 (diffusers folder, HF cache entry or single file) plus the adapter.

The app runs on machines with no network, and a library that "helpfully" downloads a missing config is a
hang or a confusing error there. So every `from_pretrained` gets `local_files_only=True` and a single
`.ckpt` / `.safetensors` file is read with the SD1.5 configs bundled in `resources/sd15/` instead of fetched
ones (the process-wide offline switch is set once where the process starts: `engine.offline`). Anything
missing is a `WeightFileMissingError` naming the file and saying where to put it.

This module only puts the pieces together; each job has its own module:
- where the files are: engine.sd15_source (`resolve_sd15`, `Sd15Source`)
- configs and tokenizer: engine.model_configs
- the instance UNet and the adapter: engine.unet_loading
- VAE and text encoder of a diffusers folder: engine.folder_loading
- a single LDM file: engine.single_file
- hashes of the files read: engine.model_hashes
- device and dtype: engine.devices
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from engine.checkpoint import key_listing
from engine.devices import place_models
from engine.folder_loading import text_encoder_from_folder, vae_from_folder
from engine.model_configs import load_tokenizer, read_json, read_model_config
from engine.model_hashes import file_sha256
from engine.models.builder import InstanceUNetConfig
from engine.sd15_source import SD15_HINT, Sd15Source, require_file, resolve_sd15
from engine.single_file import from_single_file
from engine.unet_loading import (
    ADAPTER_HINT,
    initialise_added_parts,
    load_adapter_into,
    meta_tensors,
    read_state,
    unet_from_base,
)

__all__ = ["LoadedModels", "load_components"]


@dataclass
class LoadedModels:
    """What the pipeline needs, on one device in one dtype, with the SHA-256 of every weight file read."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler_config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    grounded: bool
    hashes: dict[str, str]
    unet_config: InstanceUNetConfig
    source: Sd15Source


def _from_folder(
    src: Sd15Source, unet_config: InstanceUNetConfig | None
) -> tuple[UNet2DConditionModel, InstanceUNetConfig, AutoencoderKL, CLIPTextModel]:
    unet_file = src.weights["unet"]
    config = unet_config or InstanceUNetConfig(
        unet=read_model_config(src.path / "unet" / "config.json", UNet2DConditionModel)
    )
    unet = unet_from_base(config, read_state(unet_file, SD15_HINT), unet_file)
    vae = vae_from_folder(src.path, src.weights["vae"])
    text_encoder = text_encoder_from_folder(src.path, src.weights["text_encoder"])
    return unet, config, vae, text_encoder


def load_components(
    source: Sd15Source | str | os.PathLike[str],
    *,
    unet_config: InstanceUNetConfig | None = None,
    adapter: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> LoadedModels:
    """Load SD1.5 and (optionally) the InstanceDiffusion adapter, offline, onto `device` in `dtype`.

    `unet_config`: the instance UNet to build; by default the source's UNet config with the SD1.5-size
    UniFusion (pass one for models of other sizes; its UNet part must match the source's weights).
    Without `adapter` the fusers, UniFusion and ScaleU keep their initial values and `grounded` is False.
    """
    src = source if isinstance(source, Sd15Source) else resolve_sd15(source)
    adapter_file = Path(adapter).expanduser() if adapter is not None else None
    if adapter_file is not None:
        require_file(adapter_file, ADAPTER_HINT)  # before reading gigabytes of SD1.5
    target = torch.device(device)

    if src.kind == "diffusers":
        unet, config, vae, text_encoder = _from_folder(src, unet_config)
    else:
        unet, config, vae, text_encoder = from_single_file(src, unet_config)

    hashes = {component: file_sha256(file) for component, file in src.weights.items()}
    if adapter_file is not None:
        hashes["adapter"] = load_adapter_into(unet, adapter_file)
    else:
        initialise_added_parts(unet, config)
    leftover = meta_tensors(unet)
    if leftover:  # a bug, not a user error: fail here rather than deep inside the first render
        raise RuntimeError(f"UNet tensors left unloaded: {key_listing(leftover)}")

    place_models([unet, vae, text_encoder], target, dtype)
    return LoadedModels(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=load_tokenizer(src.tokenizer),
        scheduler_config=read_json(src.configs / "scheduler" / "scheduler_config.json", SD15_HINT),
        device=target,
        dtype=dtype,
        grounded=adapter_file is not None,
        hashes=hashes,
        unet_config=config,
        source=src,
    )
