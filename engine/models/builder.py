"""Assemble an InstanceDiffusion UNet: diffusers' gated UNet, UniFusion as its position net, ScaleU hooks.

Every dimension comes from the config, so the same code builds the SD1.5-size model and the tiny ones
the tests and the demo model use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.models.fusers import FuserConfig, install_fusers
from engine.models.scaleu import ScaleU, backbone_channels
from engine.models.unifusion import UniFusion, UniFusionConfig

# The SD1.5 UNet (spec §1.1) as diffusers' UNet2DConditionModel arguments; the rest are diffusers' defaults.
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}


@dataclass(frozen=True)
class InstanceUNetConfig:
    unet: Mapping[str, Any] = field(default_factory=lambda: dict(SD15_UNET))
    position_net: UniFusionConfig = field(default_factory=UniFusionConfig)
    fusers: FuserConfig = field(default_factory=FuserConfig)  # the official model: unmasked, gates from 0

    def unet_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.unet)
        kwargs["attention_type"] = "gated"  # builds the fusers in every transformer block
        return kwargs


def build_instance_unet(
    config: InstanceUNetConfig | None = None, device: str | torch.device = "cpu"
) -> UNet2DConditionModel:
    """A UNet with fusers (set up by `config.fusers`), UniFusion as `unet.position_net` and ScaleU as `unet.scaleu` (hooks attached).

    On `device="meta"` nothing is allocated, for loading weights with `load_state_dict(..., assign=True)`.
    """
    config = config or InstanceUNetConfig()
    with torch.device(device):
        unet: UNet2DConditionModel = UNet2DConditionModel(**config.unet_kwargs())
        # Replaces diffusers' GLIGEN projection (which its attribute annotation names).
        unet.position_net = UniFusion(config.position_net)  # type: ignore[assignment]
        unet.scaleu = ScaleU(backbone_channels(unet.config))
        install_fusers(unet, config.fusers)
    unet.scaleu.attach(unet)
    return unet


def scaleu_of(unet: UNet2DConditionModel) -> ScaleU:
    scaleu = getattr(unet, "scaleu", None)
    if not isinstance(scaleu, ScaleU):
        raise TypeError("this UNet was not built by build_instance_unet (it has no ScaleU)")
    return scaleu


def position_net_of(unet: UNet2DConditionModel) -> UniFusion:
    net = getattr(unet, "position_net", None)
    if not isinstance(net, UniFusion):
        raise TypeError("this UNet was not built by build_instance_unet (its position net is not UniFusion)")
    return net
