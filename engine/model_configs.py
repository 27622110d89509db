"""The small files next to the weights: diffusers config.json files and the CLIP tokenizer, read locally only.

Also the shared bits of turning a library's failure into one of the app's weight-file errors
(`LOAD_ERRORS`, `short_error`).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, cast

import safetensors
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTokenizer

from engine.model_config_check import SD_UNET_CONFIG, SD_VAE_CONFIG, Section, check_config
from engine.sd15_source import CONFIGS_HINT, has_tokenizer
from engine.weights_io import CorruptWeightsError, WeightFileMissingError

__all__ = ["LOAD_ERRORS", "load_tokenizer", "read_json", "read_model_config", "short_error"]

# What diffusers/transformers raise for a weight file they cannot use (missing files are checked beforehand).
LOAD_ERRORS: Final = (OSError, ValueError, RuntimeError, KeyError, TypeError, safetensors.SafetensorError)
_MAX_LENGTH_UNSET: Final = 1_000_000  # tokenizers without model_max_length report ~1e30


def short_error(exc: BaseException, limit: int = 200) -> str:
    """A library's exception as one short line for a user."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_json(path: Path, hint: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightFileMissingError(path, hint) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptWeightsError(path, f"not a readable JSON config ({exc})") from exc
    if not isinstance(data, dict):
        raise CorruptWeightsError(path, f"expected a JSON object, found {type(data).__name__}")
    return data


_CONFIG_RULES: Final[dict[Any, Section]] = {UNet2DConditionModel: SD_UNET_CONFIG, AutoencoderKL: SD_VAE_CONFIG}


def read_model_config(path: str | os.PathLike[str], model: Callable[..., Any]) -> dict[str, Any]:
    """A diffusers config.json as keyword arguments of `model`: metadata (`_class_name`...) and unknown keys dropped.

    Configs saved by other diffusers versions carry keys this one does not take; they describe defaults.
    The UNet's and the VAE's are checked against sane bounds first (`engine.model_config_check`).
    """
    data = read_json(Path(path), CONFIGS_HINT)
    rules = _CONFIG_RULES.get(model)
    if rules is not None:
        check_config(data, rules, path)
    accepted = set(inspect.signature(model).parameters)
    return {k: v for k, v in data.items() if not k.startswith("_") and k in accepted}


def load_tokenizer(folder: str | os.PathLike[str]) -> CLIPTokenizer:
    """The CLIP tokenizer in `folder`, read locally only; its max length is 77 even if the files omit it."""
    folder = Path(folder)
    if not has_tokenizer(folder):
        raise WeightFileMissingError(folder / "vocab.json", CONFIGS_HINT)
    try:
        tokenizer = cast(CLIPTokenizer, CLIPTokenizer.from_pretrained(folder, local_files_only=True))
    except LOAD_ERRORS as exc:
        raise CorruptWeightsError(folder, f"not a readable CLIP tokenizer ({short_error(exc)})") from exc
    if tokenizer.model_max_length > _MAX_LENGTH_UNSET:
        tokenizer.model_max_length = 77  # padding to "max_length" would otherwise overflow
    return tokenizer
