"""Find and load the models offline: SD1.5 (diffusers folder, HF cache entry or single file) plus the adapter.

The app runs on machines with no network, and a library that "helpfully" downloads a missing config is a
hang or a confusing error there. So nothing here can reach the hub: HF_HUB_OFFLINE is set before diffusers
and transformers are imported, every `from_pretrained` gets `local_files_only=True`, and a single `.ckpt` /
`.safetensors` file is read with the SD1.5 configs bundled in `resources/sd15/` instead of fetched ones.
Anything missing is a `WeightFileMissingError` naming the file and saying where to put it.

Where SD1.5 is (`resolve_sd15`, `Sd15Source`) lives in engine.sd15_source, the device and dtype choice
(`select_device`, `select_dtype`) in engine.devices; both are re-exported here, where callers import them.

The UNet is always built by `build_instance_unet` (fusers, UniFusion, ScaleU) on the meta device and
filled from the SD1.5 weights, then from the adapter; without an adapter the added parts get their
initial values (zero gates: the plain SD1.5 UNet) and `LoadedModels.grounded` is False.
"""

from __future__ import annotations

import os

# Before huggingface_hub (through diffusers/transformers) reads it: fail on a missing file, never download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import functools
import importlib.util
import inspect
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import safetensors
import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from diffusers.models.attention import GatedSelfAttentionDense
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from huggingface_hub import constants as hub_constants
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from engine.checkpoint import (
    LDM_UNET_PREFIX,
    CheckpointMismatchError,
    adapter_part,
    key_listing,
    load_adapter,
    load_weights,
    manifest_path,
)
from engine.devices import select_device, select_dtype
from engine.model_config_check import (
    SD_TEXT_CONFIG,
    SD_UNET_CONFIG,
    SD_VAE_CONFIG,
    Section,
    check_config,
    read_checked_config,
)
from engine.model_settings import ModelSettings, ModelSettingsError
from engine.models.builder import InstanceUNetConfig, build_instance_unet, position_net_of, scaleu_of
from engine.models.fusers import fusers
from engine.models.scaleu import ScaleU
from engine.models.unifusion import UniFusion
from engine.sd15_source import (
    CONFIGS_HINT,
    SD15_CONFIGS,
    SD15_HINT,
    Sd15Source,
    UnsupportedModelFileError,
    has_tokenizer,
    require_file,
    resolve_sd15,
)
from engine.weights_io import (
    CorruptWeightsError,
    WeightFileMissingError,
    check_torch_archive,
    load_torch_checkpoint,
    read_safetensors,
    sha256_file,
)

# huggingface_hub reads the variable once, at its own import, which may have come first (engine.checkpoint
# imports diffusers): apply it to the already-imported module too, unless the user turned it off explicitly.
if os.environ.get("HF_HUB_OFFLINE") == "1":
    hub_constants.HF_HUB_OFFLINE = True

__all__ = [
    "SD15_CONFIGS",
    "LoadedModels",
    "ModelSettings",
    "ModelSettingsError",
    "Sd15Source",
    "UnsupportedModelFileError",
    "file_sha256",
    "load_components",
    "load_tokenizer",
    "read_model_config",
    "resolve_sd15",
    "select_device",
    "select_dtype",
]

ADAPTER_HINT: Final = (
    "convert the official instancediffusion_sd15.pth into an adapter there (Settings → Models, or "
    "`main.py models convert`)"
)
LDM_VAE_PREFIX: Final = "first_stage_model."
LDM_CLIP_PREFIX: Final = "cond_stage_model.transformer."
# What diffusers/transformers raise for a weight file they cannot use (missing files are checked beforehand).
_LOAD_ERRORS: Final = (OSError, ValueError, RuntimeError, KeyError, TypeError, safetensors.SafetensorError)
_MAX_LENGTH_UNSET: Final = 1_000_000  # tokenizers without model_max_length report ~1e30


# --- hashes ----------------------------------------------------------------------------------

_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def _stat_key(path: Path) -> tuple[str, int, int]:
    file = path.resolve()
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise WeightFileMissingError(path) from None
    return str(file), stat.st_size, stat.st_mtime_ns


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weight file, remembered per (path, size, mtime) so reloading never rehashes gigabytes."""
    key = _stat_key(Path(path))
    with _HASHES_LOCK:
        cached = _HASHES.get(key)
    if cached is not None:
        return cached
    digest = sha256_file(key[0])
    with _HASHES_LOCK:
        _HASHES[key] = digest
    return digest


# --- configs and small pieces ----------------------------------------------------------------


def _read_json(path: Path, hint: str) -> dict[str, Any]:
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
    data = _read_json(Path(path), CONFIGS_HINT)
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
    except _LOAD_ERRORS as exc:
        raise CorruptWeightsError(folder, f"not a readable CLIP tokenizer ({_short(exc)})") from exc
    if tokenizer.model_max_length > _MAX_LENGTH_UNSET:
        tokenizer.model_max_length = 77  # padding to "max_length" would otherwise overflow
    return tokenizer


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _meta_tensors(module: nn.Module) -> list[str]:
    named = [*module.named_parameters(), *module.named_buffers()]
    return sorted(name for name, tensor in named if tensor.is_meta)


def _read_state(file: Path, hint: str) -> dict[str, torch.Tensor]:
    """Tensors of a weight file: safetensors directly, pickles only through the restricted unpickler."""
    if file.suffix.lower() == ".safetensors":
        return read_safetensors(file, hint=hint)
    checkpoint: Mapping[str, Any] = load_torch_checkpoint(file, hint=hint)
    nested = checkpoint.get("state_dict")
    if isinstance(nested, Mapping):  # LDM .ckpt files nest the weights under "state_dict"
        checkpoint = nested
    return {str(k): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


# --- the UNet --------------------------------------------------------------------------------


def _unet_from_base(config: InstanceUNetConfig, base: Mapping[str, torch.Tensor], path: Path) -> UNet2DConditionModel:
    """Build the instance UNet on meta and fill its SD1.5 part; every base tensor must be there."""
    try:
        unet = build_instance_unet(config, device="meta")
    except (TypeError, ValueError) as exc:
        raise CorruptWeightsError(path, f"the UNet config does not describe a buildable UNet ({_short(exc)})") from exc
    load_weights(unet, base, path, partial=True)  # unexpected keys and wrong shapes
    missing = sorted(k for k, v in unet.state_dict().items() if v.is_meta and not adapter_part(k))
    if missing:
        raise CheckpointMismatchError(path, f"{len(missing)} missing keys: {key_listing(missing)}")
    return unet


def _fill_from_fresh(module: nn.Module, fresh: Callable[[], nn.Module]) -> None:
    """Give `module`'s meta tensors the initial values of a freshly built twin (assigned, not copied)."""
    if any(t.is_meta for t in module.state_dict().values()):
        with torch.device("cpu"):
            twin = fresh()
        module.load_state_dict(twin.state_dict(), assign=True)


def _fresh_fuser_like(fuser: GatedSelfAttentionDense) -> GatedSelfAttentionDense:
    """A newly initialised fuser of the same dimensions (read from the meta one's layers)."""
    heads = int(fuser.attn.heads)
    return GatedSelfAttentionDense(
        query_dim=fuser.linear.out_features,
        context_dim=fuser.linear.in_features,
        n_heads=heads,
        d_head=int(fuser.attn.inner_dim) // heads,
    )


def _initialise_added_parts(unet: UNet2DConditionModel, config: InstanceUNetConfig) -> None:
    """Without an adapter: fusers (zero gates), UniFusion and ScaleU (zero: identity) at their initial values."""
    _fill_from_fresh(position_net_of(unet), lambda: UniFusion(config.position_net))
    scaleu = scaleu_of(unet)
    _fill_from_fresh(scaleu, lambda: ScaleU(scaleu.channels))
    for fuser in fusers(unet):
        _fill_from_fresh(fuser, functools.partial(_fresh_fuser_like, fuser))


def _load_adapter_into(unet: UNet2DConditionModel, adapter: Path) -> str:
    """Load the adapter (hash-checked against its manifest); returns its SHA-256. It must cover every added part."""
    key = _stat_key(adapter)
    load_adapter(unet, adapter)
    missing = _meta_tensors(unet)
    if missing:
        raise CheckpointMismatchError(adapter, f"{len(missing)} missing keys: {key_listing(missing)}")
    # read_adapter just checked the file against this hash: remember it instead of hashing again.
    digest = str(_read_json(manifest_path(adapter), ADAPTER_HINT)["adapter_sha256"])
    with _HASHES_LOCK:
        _HASHES[key] = digest
    return digest


# --- VAE and text encoder --------------------------------------------------------------------


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


def _vae_from_folder(folder: Path, file: Path) -> AutoencoderKL:
    read_checked_config(folder / "vae" / "config.json", SD_VAE_CONFIG, hint=SD15_HINT)
    try:
        vae, info = AutoencoderKL.from_pretrained(
            folder / "vae",
            output_loading_info=True,
            low_cpu_mem_usage=importlib.util.find_spec("accelerate")
            is not None,  # without accelerate diffusers warns, then does the same
            **_pretrained_kwargs(file),
        )
    except _LOAD_ERRORS as exc:
        raise CorruptWeightsError(file, f"could not load the VAE ({_short(exc)})") from exc
    _check_loading_info(info, file)
    if _meta_tensors(vae):
        raise CheckpointMismatchError(file, f"missing keys: {key_listing(_meta_tensors(vae))}")
    return cast(AutoencoderKL, vae)


def _text_encoder_from_folder(folder: Path, file: Path) -> CLIPTextModel:
    read_checked_config(folder / "text_encoder" / "config.json", SD_TEXT_CONFIG, hint=SD15_HINT)
    try:
        # output_loading_info makes it return (model, info); the stubs know only the model.
        text_encoder, info = cast(
            tuple[CLIPTextModel, dict[str, Any]],
            CLIPTextModel.from_pretrained(
                folder / "text_encoder", output_loading_info=True, **_pretrained_kwargs(file)
            ),
        )
    except _LOAD_ERRORS as exc:
        raise CorruptWeightsError(file, f"could not load the text encoder ({_short(exc)})") from exc
    _check_loading_info(info, file, ignore=("position_ids",))
    return text_encoder


# --- single LDM file -------------------------------------------------------------------------


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


def _from_single_file(
    source: Sd15Source, unet_config: InstanceUNetConfig | None
) -> tuple[UNet2DConditionModel, InstanceUNetConfig, AutoencoderKL, CLIPTextModel]:
    file = source.path
    state = _read_state(file, SD15_HINT)
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
        raise CorruptWeightsError(file, f"its layout is not Stable Diffusion 1.x ({_short(exc)})") from exc
    del state
    config = unet_config or InstanceUNetConfig(unet=unet_kwargs)
    unet = _unet_from_base(config, unet_state, file)

    with torch.device("meta"):
        vae = AutoencoderKL(**vae_kwargs)
    load_weights(vae, vae_state, file)
    read_checked_config(configs / "text_encoder" / "config.json", SD_TEXT_CONFIG, hint=CONFIGS_HINT)
    try:
        text_config = CLIPTextConfig.from_pretrained(configs / "text_encoder", local_files_only=True)
    except _LOAD_ERRORS as exc:
        raise CorruptWeightsError(configs / "text_encoder" / "config.json", _short(exc)) from exc
    # Built on the CPU, not meta: CLIP derives its position_ids buffer at construction.
    text_encoder = CLIPTextModel(text_config)
    load_weights(text_encoder, _clip_keys_for(text_encoder, clip_state), file)
    return unet, config, vae, text_encoder


# --- everything together ---------------------------------------------------------------------


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
        unet_file = src.weights["unet"]
        config = unet_config or InstanceUNetConfig(
            unet=read_model_config(src.path / "unet" / "config.json", UNet2DConditionModel)
        )
        unet = _unet_from_base(config, _read_state(unet_file, SD15_HINT), unet_file)
        vae = _vae_from_folder(src.path, src.weights["vae"])
        text_encoder = _text_encoder_from_folder(src.path, src.weights["text_encoder"])
    else:
        unet, config, vae, text_encoder = _from_single_file(src, unet_config)

    hashes = {component: file_sha256(file) for component, file in src.weights.items()}
    if adapter_file is not None:
        hashes["adapter"] = _load_adapter_into(unet, adapter_file)
    else:
        _initialise_added_parts(unet, config)
    leftover = _meta_tensors(unet)
    if leftover:  # a bug, not a user error: fail here rather than deep inside the first render
        raise RuntimeError(f"UNet tensors left unloaded: {key_listing(leftover)}")

    models: list[nn.Module] = [unet, vae, text_encoder]
    for model in models:
        if getattr(model, "_keep_in_fp32_modules", None):
            model.to(device=target, dtype=dtype)
        else:
            # diffusers' own `to` warns about float32-pinned modules even when there are none.
            nn.Module.to(model, device=target, dtype=dtype)
        model.eval()
        model.requires_grad_(False)
    return LoadedModels(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=load_tokenizer(src.tokenizer),
        scheduler_config=_read_json(src.configs / "scheduler" / "scheduler_config.json", SD15_HINT),
        device=target,
        dtype=dtype,
        grounded=adapter_file is not None,
        hashes=hashes,
        unet_config=config,
        source=src,
    )
