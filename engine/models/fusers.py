"""The gated self-attention fusers (diffusers' GatedSelfAttentionDense), their switch, and instance masking.

The official sampler multiplies both fuser branches by a scale that is 1 while grounding is active and 0
after the alpha cut-off; diffusers' `enabled` flag is exactly that switch (off returns the input as is).

Instance-masked attention (spec §1.3, off in the official model): a visual token may attend only to the
grounding tokens of the instances whose region covers it; the text-free seg tokens stay visible everywhere
and visual tokens still see each other. A model trained from scratch learns *where* from it in hundreds
of steps instead of not at all (docs/demo_model.md). It is a property of the model (`FuserConfig`), off
by default, and then the fusers compute exactly what diffusers' do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from diffusers.models.attention import GatedSelfAttentionDense
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

SLOT_TOKEN_GROUPS = 4  # UniFusion's box, point, scribble and polygon tokens: one per slot each


@dataclass(frozen=True)
class FuserConfig:
    """How the fusers attend, and where a model trained from scratch starts them.

    `masked_attention` needs every grounded UNet call to carry regions (`RegionTokens`). The radii say
    which latent cells a point or a scribble covers (normalised canvas units); a model is trained with
    them, so they belong to its config.
    """

    masked_attention: bool = False
    gate_init: float = 0.0  # GLIGEN's 0 protects a pretrained backbone; from scratch, 0 blocks all gradient
    point_radius: float = 0.12
    scribble_radius: float = 0.06


@dataclass(frozen=True)
class RegionTokens:
    """Grounding tokens and where each slot's tokens may be seen.

    tokens: (B, SLOT_TOKEN_GROUPS * slots + extra, D), the position net's output.
    regions: (B, slots, H, W), 1 where slot s's instance lies, on the latent grid; empty slots are all 0.
    """

    tokens: torch.Tensor
    regions: torch.Tensor

    def __getitem__(self, rows: slice) -> RegionTokens:
        return RegionTokens(self.tokens[rows], self.regions[rows])


class InstanceFuser(GatedSelfAttentionDense):
    """diffusers' fuser, with the same parameters, that can mask its attention by instance regions."""

    masked: bool = False

    def forward(self, x: torch.Tensor, objs: torch.Tensor | RegionTokens) -> torch.Tensor:
        if isinstance(objs, RegionTokens):
            if not self.masked:
                return super().forward(x, objs.tokens)
            return self._masked_forward(x, objs)
        if self.masked and self.enabled:
            raise ValueError("this model masks its fusers by instance regions: pass RegionTokens, not bare tokens")
        return super().forward(x, objs)

    def _masked_forward(self, x: torch.Tensor, objs: RegionTokens) -> torch.Tensor:
        if not self.enabled:
            return x
        n_visual = x.shape[1]
        hidden = self.norm1(torch.cat([x, self.linear(objs.tokens)], dim=1))
        visible = token_visibility(objs.regions, n_visual, hidden.shape[1] - n_visual)
        attn = self.attn
        batch, length, width = hidden.shape
        heads = attn.heads
        # Only the visual rows are used (as in diffusers' fuser), so only they are computed.
        query = attn.to_q(hidden[:, :n_visual]).view(batch, n_visual, heads, -1).transpose(1, 2)
        key = attn.to_k(hidden).view(batch, length, heads, -1).transpose(1, 2)
        value = attn.to_v(hidden).view(batch, length, heads, -1).transpose(1, 2)
        allowed = torch.cat([visible.new_ones(batch, n_visual, n_visual), visible], dim=2)[:, None]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, n_visual, width).to(x.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        gate_attn, gate_dense = _gates(self)
        x = x + gate_attn.tanh() * out
        result: torch.Tensor = x + gate_dense.tanh() * self.ff(self.norm2(x))
        return result


def token_visibility(regions: torch.Tensor, n_visual: int, n_tokens: int) -> torch.Tensor:
    """(B, n_visual, n_tokens) bool: which grounding tokens each visual token of this level may see.

    `regions` lie on the latent grid; a level with fewer tokens is the grid halved (rounding up, as
    diffusers' strided convolutions do) until it has `n_visual` cells, and a cell sees a slot if any part
    of the slot's region falls in it.
    """
    batch, slots, height, width = regions.shape
    h, w = height, width
    while h * w > n_visual:
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    if h * w != n_visual:
        raise ValueError(f"regions of {height}x{width} do not match a level of {n_visual} visual tokens")
    level = regions if (h, w) == (height, width) else F.adaptive_max_pool2d(regions.float(), (h, w))
    per_slot = (level > 0).flatten(2).transpose(1, 2)  # (B, n_visual, slots)
    slot_tokens = SLOT_TOKEN_GROUPS * slots
    if n_tokens < slot_tokens:
        raise ValueError(f"{n_tokens} grounding tokens cannot hold {slots} slots")
    always = per_slot.new_ones(batch, n_visual, n_tokens - slot_tokens)  # seg tokens carry no caption
    return torch.cat([per_slot.repeat(1, 1, SLOT_TOKEN_GROUPS), always], dim=2)


def install_fusers(unet: UNet2DConditionModel, config: FuserConfig) -> None:
    """Turn every fuser of a freshly built UNet into an `InstanceFuser` (same parameters) set up by `config`."""
    for fuser in fusers(unet):
        fuser.__class__ = InstanceFuser  # adds behaviour only: no parameter or buffer changes
        assert isinstance(fuser, InstanceFuser)
        fuser.masked = config.masked_attention
        with torch.no_grad():
            for gate in _gates(fuser):
                gate.fill_(config.gate_init)
    setattr(unet, "fuser_config", config)  # noqa: B010 - a plain attribute diffusers' class does not declare


def _gates(fuser: GatedSelfAttentionDense) -> tuple[torch.Tensor, torch.Tensor]:
    # Registered with register_parameter, so type checkers cannot see them as tensors.
    return cast(torch.Tensor, fuser.alpha_attn), cast(torch.Tensor, fuser.alpha_dense)


def fuser_config_of(unet: UNet2DConditionModel) -> FuserConfig:
    config = getattr(unet, "fuser_config", None)
    return config if isinstance(config, FuserConfig) else FuserConfig()


def fusers(unet: UNet2DConditionModel) -> list[GatedSelfAttentionDense]:
    return [module for module in unet.modules() if isinstance(module, GatedSelfAttentionDense)]


def set_fusers_enabled(unet: UNet2DConditionModel, enabled: bool) -> None:
    """Grounding on (scale 1) or off (scale 0) for every fuser."""
    for fuser in fusers(unet):
        fuser.enabled = enabled
