"""The official `instancediffusion_sd15.pth`: read it safely, convert it, and keep it as an adapter.

The official file is a pickle of sub-state-dicts (`model`, `ema`, `autoencoder`, ...). It is read only with
`torch.load(weights_only=True)` (engine.weights_io), never unpickling code. Its UNet state dict uses LDM
names: the base UNet and the 16 fusers go through diffusers' LDM->diffusers map; `position_net.*` keeps
its names (UniFusion was written to match); `scaleu_{b,s}_k` become `scaleu.scaleu_{b,s}_k`.

The added parts (fusers, position net, ScaleU) are then written once as an adapter: a safetensors file and
a JSON manifest holding the SHA-256 of the source and of the adapter. Later loads read only the
safetensors and check its hash, so the pickle is touched once, in the convert step.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.models.builder import InstanceUNetConfig, build_instance_unet
from engine.weights_io import (
    CorruptWeightsError,
    WeightFileError,
    check_finite,
    load_torch_checkpoint,
    read_safetensors,
    sha256_file,
    write_safetensors_atomic,
)

LDM_UNET_PREFIX: Final = "model.diffusion_model."
ADAPTER_FORMAT: Final = "instance-studio-adapter/1"
MANIFEST_SUFFIX: Final = ".manifest.json"


class CheckpointMismatchError(WeightFileError):
    """Keys or shapes that do not fit the model; the reason lists them."""


def adapter_part(key: str) -> bool:
    """Is this (diffusers) key one of InstanceDiffusion's additions rather than the SD1.5 UNet?"""
    return ".fuser." in key or key.startswith(("position_net.", "scaleu."))


def official_unet_state(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The UNet state dict of an official checkpoint: `ema` when present (as the official loader), else `model`."""
    for name in ("ema", "model"):
        if name in checkpoint:
            state = checkpoint[name]
            break
    else:
        found = ", ".join(sorted(str(k) for k in checkpoint)[:8]) or "nothing"
        raise CorruptWeightsError(Path(path), f"no 'ema' or 'model' state dict in the checkpoint (found {found})")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CorruptWeightsError(Path(path), f"checkpoint['{name}'] is not a state dict of tensors")
    # Some exports keep LDM's full prefix; the official one stores the bare UNet names.
    return {str(k).removeprefix(LDM_UNET_PREFIX): v for k, v in state.items()}


def convert_official_unet(
    state: Mapping[str, torch.Tensor], unet_config: Mapping[str, Any], path: str | os.PathLike[str]
) -> dict[str, torch.Tensor]:
    """Official UNet state dict (LDM names) -> our model's names. Keys that map nowhere are an error."""
    base = {LDM_UNET_PREFIX + k: v for k, v in state.items() if not k.startswith(("position_net.", "scaleu_"))}
    converted: dict[str, torch.Tensor] = dict(convert_ldm_unet_checkpoint(base, dict(unet_config)))  # type: ignore[no-untyped-call]
    for key, value in state.items():
        if key.startswith("position_net."):
            converted[key] = value
        elif key.startswith("scaleu_"):
            converted[f"scaleu.{key}"] = value
    # diffusers' converter silently drops what it does not know: account for every input tensor.
    used = {id(v) for v in converted.values()}
    unused = sorted(k for k, v in state.items() if id(v) not in used)
    if unused:
        raise CheckpointMismatchError(Path(path), f"{len(unused)} unexpected keys: {key_listing(unused)}")
    return converted


def check_fits(
    model: torch.nn.Module, weights: Mapping[str, torch.Tensor], path: str | os.PathLike[str], *, partial: bool = False
) -> None:
    """Raise CheckpointMismatchError listing missing, unexpected and wrongly shaped keys.

    With `partial`, keys the weights do not mention are allowed (an adapter covers only part of the UNet).
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [] if partial else sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(
        f"{k} {tuple(v.shape)} != {expected[k]}"
        for k, v in weights.items()
        if k in expected and tuple(v.shape) != expected[k]
    )
    problems = [
        f"{len(items)} {what}: {key_listing(items)}"
        for what, items in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", shapes))
        if items
    ]
    if problems:
        raise CheckpointMismatchError(Path(path), "; ".join(problems))


def load_weights(
    model: torch.nn.Module, weights: Mapping[str, torch.Tensor], path: str | os.PathLike[str], *, partial: bool = False
) -> None:
    """Check, then load; parameters still on the meta device are replaced (assign) rather than copied into."""
    check_fits(model, weights, path, partial=partial)
    on_meta = any(p.is_meta for p in model.parameters())
    model.load_state_dict(dict(weights), strict=not partial, assign=on_meta)


# --- the adapter ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterManifest:
    adapter_sha256: str
    source_sha256: str
    source_name: str
    tensors: int
    parameters: int
    created: str
    format: str = ADAPTER_FORMAT

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True)


def manifest_path(adapter_path: Path) -> Path:
    return adapter_path.with_name(adapter_path.name + MANIFEST_SUFFIX)


def convert_official_checkpoint(
    source: str | os.PathLike[str], adapter: str | os.PathLike[str], config: InstanceUNetConfig
) -> AdapterManifest:
    """Read the official .pth once, keep its added parts as a safetensors adapter with a manifest.

    The adapter is checked against the model `config` describes (built on the meta device, so for free):
    a checkpoint of another size fails here, not at the first render.
    """
    source, adapter = Path(source), Path(adapter)
    state = official_unet_state(load_torch_checkpoint(source), source)
    converted = convert_official_unet(state, config.unet_kwargs(), source)
    parts = {k: v for k, v in converted.items() if adapter_part(k)}
    if not parts:
        raise CheckpointMismatchError(
            source, "it holds no fusers, position_net or ScaleU: not an InstanceDiffusion checkpoint"
        )
    model = build_instance_unet(config, device="meta")
    check_fits(model, {**{k: v for k, v in model.state_dict().items() if not adapter_part(k)}, **parts}, source)
    # Own copies: checkpoint tensors may be views of shared storage, which safetensors refuses to write.
    tensors = {k: v.clone(memory_format=torch.contiguous_format) for k, v in parts.items()}
    check_finite(tensors, source)
    write_safetensors_atomic(tensors, adapter, metadata={"format": ADAPTER_FORMAT, "source": source.name})
    manifest = AdapterManifest(
        adapter_sha256=sha256_file(adapter),
        source_sha256=sha256_file(source),
        source_name=source.name,
        tensors=len(tensors),
        parameters=sum(t.numel() for t in tensors.values()),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    manifest_path(adapter).write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest


def read_adapter(adapter: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The adapter's tensors, after checking its SHA-256 against its manifest and that every value is finite."""
    adapter = Path(adapter)
    manifest_file = manifest_path(adapter)
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        expected = str(manifest["adapter_sha256"])
    except FileNotFoundError:
        raise CorruptWeightsError(
            adapter, f"its manifest {manifest_file.name} is missing; convert the checkpoint again"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptWeightsError(adapter, f"its manifest {manifest_file.name} is unreadable ({exc})") from exc
    actual = sha256_file(adapter)
    if actual != expected:
        raise CorruptWeightsError(
            adapter, "its SHA-256 does not match the manifest: the file changed since it was converted"
        )
    tensors = read_safetensors(adapter)
    check_finite(tensors, adapter)
    return tensors


def load_adapter(unet: UNet2DConditionModel, adapter: str | os.PathLike[str]) -> None:
    weights = read_adapter(adapter)
    if not any(k.startswith("position_net.") for k in weights):
        raise CheckpointMismatchError(Path(adapter), "the adapter has no position_net")
    load_weights(unet, weights, adapter, partial=True)


def key_listing(items: list[str], limit: int = 8) -> str:
    """The first `limit` names, and how many more: for one-line mismatch messages."""
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
