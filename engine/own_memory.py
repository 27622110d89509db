"""Loaded weights in memory of their own, so a model computes the same whichever way it was loaded.

Weights read from a safetensors file are views into the mapped file, at whatever offsets the file laid
them out, and most are not aligned to the 64 bytes CPU kernels prefer. With one thread, torch's CPU matrix
multiply takes another path for unaligned memory, which rounds differently in the last bit: the same
request would then render a (slightly) different image from a model saved and loaded again, or read from
a file laid out differently (1 of 2 tiny round trips differed by ~1e-6 before this). Copying each such
tensor once into fresh memory (the allocator aligns it) makes the output depend only on the weights' values,
and releases the mapped file. Only CPU tensors are concerned: moving to an accelerator copies anyway.
"""

from __future__ import annotations

import torch

ALIGNMENT = 64  # bytes: what the CPU kernels' fast paths and torch's own allocator use


def own_memory(module: torch.nn.Module) -> int:
    """Copy every unaligned CPU parameter and buffer of `module` into fresh memory, keeping tensors that
    shared memory shared. Returns how many tensors were copied."""
    copies: dict[tuple[int, tuple[int, ...], tuple[int, ...]], torch.Tensor] = {}
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.device.type != "cpu" or tensor.data_ptr() % ALIGNMENT == 0:
                continue
            key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()))
            if key not in copies:
                copies[key] = tensor.data.clone()
            tensor.data = copies[key]
    return len(copies)
