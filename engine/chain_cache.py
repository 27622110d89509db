"""Exact reuse of unchanged instance chains between renders.

In the multi-instance sampler, chain k (instance k alone, its caption as the prompt) depends only on
its own conditioning tensors (prompt context, grounding tokens, regions), the negative prompt's context,
the null grounding, the starting noise, the sampler settings, the scheduler and the model. When the
user moves one instance of five, the other four chains are what they were last time: their latents at
the merge point are kept here and the sampler skips them.

The key is a digest of the tensors themselves (not of the request that made them), so anything that
changes a chain's input, such as the drop flags that follow the layout's mix of location kinds, changes
its key, and a changed setting can never reuse a stale chain. The cache is bounded in bytes (least
recently used out first) and belongs to one loaded model: the pipeline owns it, and the key carries
the model's identity, device and dtype as well.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

import torch

# Latents of one 512x512 chain are 64 KiB in fp32: this holds thousands, a small share of any GPU.
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
# Changes whenever the sampler's arithmetic does, so a cache can never outlive the code that filled it.
SAMPLER_VERSION: Final = "mis-1"


def tensor_digest(tensor: torch.Tensor | None) -> bytes:
    """A digest of a tensor's dtype, shape and exact bytes (None has a digest of its own)."""
    hasher = hashlib.blake2b(digest_size=16)
    if tensor is None:
        hasher.update(b"none")
        return hasher.digest()
    hasher.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    hasher.update(flat.view(torch.uint8).numpy().tobytes())
    return hasher.digest()


def chain_key(shared: bytes, context: torch.Tensor, tokens: torch.Tensor | None, regions: torch.Tensor | None) -> str:
    """The key of one instance chain: what every chain of a render shares (`shared`), then its own inputs."""
    hasher = hashlib.blake2b(digest_size=20)
    hasher.update(shared)
    for part in (context, tokens, regions):
        hasher.update(tensor_digest(part))
    return hasher.hexdigest()


def shared_digest(parts: Iterable[torch.Tensor | None], settings: Iterable[object]) -> bytes:
    """What all chains of one render depend on: tensors (noise, negative context, null tokens) and plain
    settings (steps, guidance, alpha, mis, scheduler, model identity, device, dtype)."""
    hasher = hashlib.blake2b(digest_size=20)
    hasher.update(SAMPLER_VERSION.encode())
    for tensor in parts:
        hasher.update(tensor_digest(tensor))
    hasher.update(repr(tuple(settings)).encode())
    return hasher.digest()


class ChainCache:
    """Instance chains' latents at the merge point, by key; least recently used out first."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> torch.Tensor | None:
        latents = self._entries.get(key)
        if latents is not None:
            self._entries.move_to_end(key)
        return latents

    def put(self, key: str, latents: torch.Tensor) -> None:
        size = _bytes_of(latents)
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._bytes -= _bytes_of(self._entries.pop(key))
        self._entries[key] = latents.detach().clone()
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= _bytes_of(dropped)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0


def _bytes_of(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()
