"""The VAE and text encoder of a diffusers folder, loaded by diffusers and transformers themselves, offline.

Every call passes `local_files_only=True`; a `.bin` is checked for zip bombs before the library unpickles
it; missing keys and wrong shapes are a `CheckpointMismatchError` naming the file.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from transformers import CLIPTextModel

from engine.checkpoint import CheckpointMismatchError, key_listing
from engine.model_config_check import SD_TEXT_CONFIG, SD_VAE_CONFIG, read_checked_config
from engine.model_configs import LOAD_ERRORS, short_error
from engine.sd15_source import SD15_HINT
from engine.unet_loading import meta_tensors
from engine.weights_io import CorruptWeightsError, check_torch_archive

__all__ = ["text_encoder_from_folder", "vae_from_folder"]


def _pretrained_kwargs(file: Path) -> dict[str, Any]:
    if file.suffix.lower() != ".safetensors":
        # diffusers and transformers torch.load a .bin themselves: refuse a zip bomb before they inflate it.
        check_torch_archive(file)
    kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": file.suffix == ".safetensors"}
    if ".fp16." in file.name:
        kwargs["variant"] = "fp16"
    return kwargs


def _check_loading_info(info: Mapping[str, Any], file: Path, ignore: Iterable[str] = ()) -> None:
    skipped = tuple(ignore)
    missing = sorted(str(k) for k in info.get("missing_keys", ()) if not any(str(k).endswith(s) for s in skipped))
    mismatched = sorted(str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    problems = [
        f"{len(items)} {what}: {key_listing(items)}"
        for what, items in (("missing keys", missing), ("wrong shapes", mismatched))
        if items
    ]
    if problems:
        raise CheckpointMismatchError(file, "; ".join(problems))


def vae_from_folder(folder: Path, file: Path) -> AutoencoderKL:
    read_checked_config(folder / "vae" / "config.json", SD_VAE_CONFIG, hint=SD15_HINT)
    try:
        vae, info = AutoencoderKL.from_pretrained(
            folder / "vae",
            output_loading_info=True,
            low_cpu_mem_usage=importlib.util.find_spec("accelerate")
            is not None,  # without accelerate diffusers warns, then does the same
            **_pretrained_kwargs(file),
        )
    except LOAD_ERRORS as exc:
        raise CorruptWeightsError(file, f"could not load the VAE ({short_error(exc)})") from exc
    _check_loading_info(info, file)
    if meta_tensors(vae):
        raise CheckpointMismatchError(file, f"missing keys: {key_listing(meta_tensors(vae))}")
    return cast(AutoencoderKL, vae)


def text_encoder_from_folder(folder: Path, file: Path) -> CLIPTextModel:
    read_checked_config(folder / "text_encoder" / "config.json", SD_TEXT_CONFIG, hint=SD15_HINT)
    try:
        # output_loading_info makes it return (model, info); the stubs know only the model.
        text_encoder, info = cast(
            tuple[CLIPTextModel, dict[str, Any]],
            CLIPTextModel.from_pretrained(
                folder / "text_encoder", output_loading_info=True, **_pretrained_kwargs(file)
            ),
        )
    except LOAD_ERRORS as exc:
        raise CorruptWeightsError(file, f"could not load the text encoder ({short_error(exc)})") from exc
    _check_loading_info(info, file, ignore=("position_ids",))
    return text_encoder
