"""Assemble an InstanceDiffusion UNet: diffusers' gated UNet, UniFusion as its position net, ScaleU hooks.

Every dimension comes from the config, so the same code builds the SD1.5-size model and the tiny ones
the tests and the demo model use. The model is `InstanceUNet2DConditionModel` (engine.models.instance_unet),
a registered diffusers model that builds its added parts itself; this module keeps the app's entry points.
"""

from __future__ import annotations

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.models.instance_unet import SD15_UNET, InstanceUNet2DConditionModel, InstanceUNetConfig
from engine.models.scaleu import ScaleU
from engine.models.unifusion import UniFusion

__all__ = [
    "SD15_UNET",
    "InstanceUNet2DConditionModel",
    "InstanceUNetConfig",
    "build_instance_unet",
    "position_net_of",
    "scaleu_of",
]


def build_instance_unet(
    config: InstanceUNetConfig | None = None, device: str | torch.device = "cpu"
) -> InstanceUNet2DConditionModel:
    """A UNet with fusers (set up by `config.fusers`), UniFusion as `unet.position_net` and ScaleU as `unet.scaleu` (hooks attached).

    On `device="meta"` nothing is allocated, for loading weights with `load_state_dict(..., assign=True)`.
    """
    config = config or InstanceUNetConfig()
    with torch.device(device):
        unet: InstanceUNet2DConditionModel = InstanceUNet2DConditionModel(**config.model_kwargs())
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
