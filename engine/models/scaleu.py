"""ScaleU (spec §1.6): learned rescaling of the decoder's backbone features and skip connections.

At each of the decoder's skip merges k (diffusers `up_blocks[i].resnets[j]`, k counting over all of them),
the backbone part h is scaled per channel by tanh(b_k) + 1, and the skip part's lowest frequencies (the
centred 2x2 FFT block) by tanh(s_k) + 1, just before the resnet consumes cat([h, skip]). It is applied as a
forward pre-hook on each resnet, so diffusers' blocks stay unpatched. Zero parameters are the identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.utils.torch_utils import fourier_filter
from torch import nn
from torch.utils.hooks import RemovableHandle


def backbone_channels(unet_config: Mapping[str, Any]) -> list[int]:
    """Channels of the backbone part of each up-block resnet's input, in the order diffusers builds them."""
    reversed_channels = list(reversed(unet_config["block_out_channels"]))
    layers = unet_config["layers_per_block"]
    per_block = (layers if isinstance(layers, int) else layers[0]) + 1
    channels: list[int] = []
    output_channel = reversed_channels[0]
    for i in range(len(reversed_channels)):
        prev_output_channel, output_channel = output_channel, reversed_channels[i]
        channels.extend(prev_output_channel if j == 0 else output_channel for j in range(per_block))
    return channels


class ScaleU(nn.Module):
    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.channels = tuple(channels)
        for k, width in enumerate(self.channels):
            self.register_parameter(f"scaleu_b_{k}", nn.Parameter(torch.zeros(width)))
            self.register_parameter(f"scaleu_s_{k}", nn.Parameter(torch.zeros(1)))
        self.enabled = True
        self._handles: list[RemovableHandle] = []

    def attach(self, unet: UNet2DConditionModel) -> None:
        """Hook every up-block resnet of `unet`; they must be as many as this ScaleU has merges."""
        resnets = [resnet for block in unet.up_blocks for resnet in cast(nn.ModuleList, block.resnets)]
        if len(resnets) != len(self.channels):
            raise ValueError(
                f"ScaleU has {len(self.channels)} merges but the UNet has {len(resnets)} up-block resnets"
            )
        self.detach()
        for k, resnet in enumerate(resnets):
            self._handles.append(resnet.register_forward_pre_hook(self._hook(k), with_kwargs=True))

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, k: int) -> Any:
        def pre_hook(
            _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            if not self.enabled:
                return args, kwargs
            if args:
                return (self.merge(k, args[0]), *args[1:]), kwargs
            kwargs["input_tensor"] = self.merge(k, kwargs["input_tensor"])
            return args, kwargs

        return pre_hook

    def merge(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Rescale cat([h, skip]) for merge k."""
        b: torch.Tensor = getattr(self, f"scaleu_b_{k}")
        s: torch.Tensor = getattr(self, f"scaleu_s_{k}")
        split = self.channels[k]
        h, skip = x[:, :split], x[:, split:]
        h = h * (torch.tanh(b) + 1).to(h.dtype)[None, :, None, None]
        # fourier_filter is annotated `scale: int` but multiplies a tensor mask by it: a tensor scale keeps autograd.
        skip = fourier_filter(skip, threshold=1, scale=(torch.tanh(s) + 1).to(torch.float32))  # type: ignore[arg-type]
        return torch.cat([h, skip], dim=1)
