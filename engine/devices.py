"""Which device and dtype to render on: the user's preference ("auto", "cuda:1", "bf16"...) checked against
what this machine has, with errors that say what to choose instead; and putting loaded models there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import torch
from torch import nn

__all__ = ["place_models", "select_device", "select_dtype"]


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(preference: str = "auto") -> torch.device:
    """auto: CUDA if available, else Apple MPS, else CPU. An explicit device that is not there is a ValueError."""
    choice = preference.strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if choice == "cpu":
        return torch.device("cpu")
    if choice == "mps":
        if not _mps_available():
            raise ValueError("device 'mps' was chosen but Apple's MPS is not available here; choose 'auto' or 'cpu'")
        return torch.device("mps")
    if choice == "cuda" or re.fullmatch(r"cuda:\d+", choice):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {preference!r} was chosen but CUDA is not available (no NVIDIA GPU, or a CPU-only torch); "
                "choose 'auto' or 'cpu'"
            )
        device = torch.device(choice)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {preference!r} was chosen but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return device
    raise ValueError(f"unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps")


_DTYPE_NAMES: Final[dict[str, torch.dtype]] = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def select_dtype(device: torch.device | str, preference: str = "auto") -> torch.dtype:
    """auto: float16 on CUDA and MPS, float32 on CPU. fp16/bf16/fp32 override, where the device can run them.

    float16 on the CPU is refused: many kernels are missing or very slow there (bf16 works).
    """
    device = torch.device(device)
    choice = preference.strip().lower()
    if choice == "auto":
        return torch.float16 if device.type in {"cuda", "mps"} else torch.float32
    if choice not in _DTYPE_NAMES:
        raise ValueError(f"unknown dtype {preference!r}; use auto, fp16, bf16 or fp32")
    dtype = _DTYPE_NAMES[choice]
    if dtype == torch.float16 and device.type == "cpu":
        raise ValueError("fp16 is not supported on the CPU (slow or missing kernels); use fp32 or bf16 there")
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("bf16 was chosen but this GPU does not support bfloat16; use fp16 or auto")
    return dtype


def place_models(models: Iterable[nn.Module], device: torch.device, dtype: torch.dtype) -> None:
    """Move each model to `device` in `dtype`, for inference only (eval mode, no gradients)."""
    for model in models:
        if getattr(model, "_keep_in_fp32_modules", None):
            model.to(device=device, dtype=dtype)
        else:
            # diffusers' own `to` warns about float32-pinned modules even when there are none.
            nn.Module.to(model, device=device, dtype=dtype)
        model.eval()
        model.requires_grad_(False)
