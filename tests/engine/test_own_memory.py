"""Loaded weights get memory of their own, aligned, so a model computes the same however it was loaded."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.models.instance_unet import InstanceUNet2DConditionModel
from engine.own_memory import ALIGNMENT, own_memory
from tests.engine.tiny_sd import tiny_unet


def test_unaligned_tensors_are_copied_once_keeping_shared_ones_shared() -> None:
    storage = torch.arange(1000, dtype=torch.float32)
    module = torch.nn.Module()
    module.a = torch.nn.Parameter(storage[1:101])  # 4 bytes past an aligned start
    module.b = module.a  # tied: must stay one tensor
    module.register_buffer("c", storage[3:13].clone()[1:])
    assert module.a.data_ptr() % ALIGNMENT and module.c.data_ptr() % ALIGNMENT
    assert own_memory(module) == 2
    assert module.a.data_ptr() % ALIGNMENT == 0 and module.c.data_ptr() % ALIGNMENT == 0
    assert module.b is module.a and torch.equal(module.a, torch.arange(1, 101, dtype=torch.float32))
    assert own_memory(module) == 0  # nothing left to copy


def test_a_unet_read_from_safetensors_owns_aligned_memory(tmp_path: Path) -> None:
    tiny_unet().save_pretrained(tmp_path / "unet")
    loaded = InstanceUNet2DConditionModel.from_pretrained(tmp_path / "unet", local_files_only=True)
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors and all(t.data_ptr() % ALIGNMENT == 0 for t in tensors)
