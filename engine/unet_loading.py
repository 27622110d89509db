"""The instance UNet filled from weight files: SD1.5's part from the base, the added parts from the adapter.

It is always built by `build_instance_unet` (fusers, UniFusion, ScaleU) on the meta device and filled from
the base's weights, then from the adapter; without an adapter the added parts get their initial values
(zero gates: the plain SD1.5 UNet).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import torch
from diffusers.models.attention import GatedSelfAttentionDense
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from torch import nn

from engine.checkpoint import (
    CheckpointMismatchError,
    adapter_part,
    key_listing,
    load_adapter,
    load_weights,
    manifest_path,
)
from engine.model_configs import read_json, short_error
from engine.model_hashes import remember_sha256, stat_key
from engine.models.builder import InstanceUNetConfig, build_instance_unet, position_net_of, scaleu_of
from engine.models.fusers import fusers
from engine.models.scaleu import ScaleU
from engine.models.unifusion import UniFusion
from engine.weights_io import CorruptWeightsError, load_torch_checkpoint, read_safetensors

__all__ = [
    "ADAPTER_HINT",
    "initialise_added_parts",
    "load_adapter_into",
    "meta_tensors",
    "read_state",
    "unet_from_base",
]

ADAPTER_HINT: Final = (
    "convert the official instancediffusion_sd15.pth into an adapter there (Settings → Models, or "
    "`main.py models convert`)"
)


def meta_tensors(module: nn.Module) -> list[str]:
    named = [*module.named_parameters(), *module.named_buffers()]
    return sorted(name for name, tensor in named if tensor.is_meta)


def read_state(file: Path, hint: str) -> dict[str, torch.Tensor]:
    """Tensors of a weight file: safetensors directly, pickles only through the restricted unpickler."""
    if file.suffix.lower() == ".safetensors":
        return read_safetensors(file, hint=hint)
    checkpoint: Mapping[str, Any] = load_torch_checkpoint(file, hint=hint)
    nested = checkpoint.get("state_dict")
    if isinstance(nested, Mapping):  # LDM .ckpt files nest the weights under "state_dict"
        checkpoint = nested
    return {str(k): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}


def unet_from_base(config: InstanceUNetConfig, base: Mapping[str, torch.Tensor], path: Path) -> UNet2DConditionModel:
    """Build the instance UNet on meta and fill its SD1.5 part; every base tensor must be there."""
    try:
        unet = build_instance_unet(config, device="meta")
    except (TypeError, ValueError) as exc:
        raise CorruptWeightsError(
            path, f"the UNet config does not describe a buildable UNet ({short_error(exc)})"
        ) from exc
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


def initialise_added_parts(unet: UNet2DConditionModel, config: InstanceUNetConfig) -> None:
    """Without an adapter: fusers (zero gates), UniFusion and ScaleU (zero: identity) at their initial values."""
    _fill_from_fresh(position_net_of(unet), lambda: UniFusion(config.position_net))
    scaleu = scaleu_of(unet)
    _fill_from_fresh(scaleu, lambda: ScaleU(scaleu.channels))
    for fuser in fusers(unet):
        _fill_from_fresh(fuser, functools.partial(_fresh_fuser_like, fuser))


def load_adapter_into(unet: UNet2DConditionModel, adapter: Path) -> str:
    """Load the adapter (hash-checked against its manifest); returns its SHA-256. It must cover every added part."""
    key = stat_key(adapter)
    load_adapter(unet, adapter)
    missing = meta_tensors(unet)
    if missing:
        raise CheckpointMismatchError(adapter, f"{len(missing)} missing keys: {key_listing(missing)}")
    # read_adapter just checked the file against this hash: remember it instead of hashing again.
    digest = str(read_json(manifest_path(adapter), ADAPTER_HINT)["adapter_sha256"])
    remember_sha256(key, digest)
    return digest
