"""The 16 gated self-attention fusers (diffusers' GatedSelfAttentionDense) and their on/off switch.

The official sampler multiplies both fuser branches by a scale that is 1 while grounding is active and 0
after the alpha cut-off; diffusers' `enabled` flag is exactly that switch (off returns the input as is).
"""

from __future__ import annotations

from diffusers.models.attention import GatedSelfAttentionDense
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel


def fusers(unet: UNet2DConditionModel) -> list[GatedSelfAttentionDense]:
    return [module for module in unet.modules() if isinstance(module, GatedSelfAttentionDense)]


def set_fusers_enabled(unet: UNet2DConditionModel, enabled: bool) -> None:
    """Grounding on (scale 1) or off (scale 0) for every fuser."""
    for fuser in fusers(unet):
        fuser.enabled = enabled
