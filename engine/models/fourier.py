"""The Fourier embedding UniFusion uses for every location kind (spec §1.4)."""

from __future__ import annotations

import torch


def fourier_embed(values: torch.Tensor, num_freqs: int = 16, base: float = 100.0) -> torch.Tensor:
    """Embed the last axis (D coordinates) as [sin(f0 v), cos(f0 v), sin(f1 v), ...], 2 * num_freqs * D values.

    f_k = base ** (k / num_freqs), no 2*pi factor: the official ordering, where each sin/cos block spans all
    D coordinates. Computed in float32 like the official code.
    """
    freqs = base ** (torch.arange(num_freqs, dtype=torch.float32, device=values.device) / num_freqs)
    angles = values.to(torch.float32).unsqueeze(-2) * freqs.unsqueeze(-1)  # (..., F, D)
    embedded = torch.stack([angles.sin(), angles.cos()], dim=-2)  # (..., F, 2, D)
    return embedded.flatten(-3).to(values.dtype if values.is_floating_point() else torch.float32)
