"""Tiny InstanceDiffusion UNets for tests: real diffusers modules at toy widths, built in well under a second.

`TINY_SD15_SHAPED` keeps SD1.5's structure (4 levels, 2 layers per block, the same block types), so its
LDM key names are exactly the official checkpoint's and an official-layout file can be written for it.
"""

from __future__ import annotations

import json

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.models.builder import SD15_UNET, InstanceUNetConfig, build_instance_unet
from engine.models.unifusion import UniFusionConfig
from tests.engine.parity import LDM_TO_DIFFUSERS_FILE

TINY_POSITION_NET = UniFusionConfig(
    text_dim=32,
    out_dim=32,
    mid_dim=48,
    seg_size=64,
    convnext_depths=(1, 1, 1, 1),
    convnext_dims=(8, 8, 16, 64),
)
TINY_SD15_SHAPED = InstanceUNetConfig(
    unet={**SD15_UNET, "sample_size": 8, "block_out_channels": (32, 32, 64, 64), "cross_attention_dim": 32},
    position_net=TINY_POSITION_NET,
)


def tiny_unet(seed: int = 0, config: InstanceUNetConfig = TINY_SD15_SHAPED) -> UNet2DConditionModel:
    """A tiny UNet whose zero-initialised InstanceDiffusion parts are randomised, so grounding has an effect."""
    torch.manual_seed(seed)
    unet = build_instance_unet(config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.startswith(("position_net.null", "scaleu.")) or name.endswith(("alpha_attn", "alpha_dense")):
                param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    return unet.eval()


def to_official_layout(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    """The UNet's weights under the official checkpoint's LDM names (via the reference map)."""
    ldm_to_diffusers: dict[str, str] = json.loads(LDM_TO_DIFFUSERS_FILE.read_text())
    ours = {v if not v.startswith("scaleu_") else f"scaleu.{v}": k for k, v in ldm_to_diffusers.items()}
    return {ours[name]: tensor.detach().clone() for name, tensor in unet.state_dict().items()}
