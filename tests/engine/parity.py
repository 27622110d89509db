"""The parity fixtures' weight recipe and where the fixtures live.

The recipe (the fixture README, section 1.2) gives every tensor of the official UNet state dict a value
from its name and shape alone, so the official code and ours can be compared without any checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from engine.models.unifusion import GroundingDrops
from tests.conftest import REPO_ROOT

DATA = Path(__file__).with_name("data")
KEYS_FILE = DATA / "instdiff_sd15_keys.json"
LDM_TO_DIFFUSERS_FILE = DATA / "instdiff_sd15_ldm_to_diffusers_unet.json"
MODEL_GROUPS = ("model.unet_sd15", "model.fusers", "model.scaleu", "model.position_net")


def parity_dir() -> Path:
    """INSTANCE_STUDIO_PARITY_DIR when set (it must exist), else ../shared/reference/parity (skip if absent)."""
    override = os.environ.get("INSTANCE_STUDIO_PARITY_DIR")
    if override:
        path = Path(override)
        if not path.is_dir():
            pytest.fail(f"INSTANCE_STUDIO_PARITY_DIR={override} is not a folder")
        return path
    path = REPO_ROOT.parent / "shared" / "reference" / "parity"
    if not path.is_dir():
        pytest.skip(f"no parity fixtures at {path} (set INSTANCE_STUDIO_PARITY_DIR)")
    return path


@cache
def manifest() -> dict[str, dict[str, list[int]]]:
    data: dict[str, dict[str, list[int]]] = json.loads(KEYS_FILE.read_text())
    return data


def model_shapes(groups: Iterable[str] = MODEL_GROUPS) -> dict[str, list[int]]:
    """Name -> shape of the official UNet state dict (LDM names, no prefix), for the chosen groups."""
    shapes: dict[str, list[int]] = {}
    for group in groups:
        shapes.update(manifest()[group])
    return shapes


def recipe_tensor(key: str, shape: Iterable[int]) -> torch.Tensor:
    shape = tuple(shape)
    generator = torch.Generator("cpu").manual_seed(zlib.crc32(key.encode("utf-8")))
    v = torch.randn(shape, generator=generator, dtype=torch.float32)
    if key == "position_net.pos_embedding":
        return 0.1 * v
    if v.ndim >= 2:
        return v / math.sqrt(math.prod(shape[1:]))
    if v.ndim == 1 and key.endswith("weight"):
        return 1 + 0.1 * v
    if v.ndim == 0:
        return 0.5 + 0.1 * v
    return 0.1 * v


def recipe_state_dict(groups: Iterable[str] = MODEL_GROUPS, prefix: str = "") -> dict[str, torch.Tensor]:
    """The recipe's tensors for the chosen groups, keys optionally limited to those starting with `prefix`."""
    return {k: recipe_tensor(k, s) for k, s in model_shapes(groups).items() if k.startswith(prefix)}


def read_fixture(name: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A fixture file's tensors and string metadata."""
    path = parity_dir() / name
    with safe_open(path, "pt") as handle:
        metadata = dict(handle.metadata() or {})
    return load_file(path), metadata


def drops_from_metadata(metadata: dict[str, str], config: str) -> GroundingDrops:
    """The drop flags the fixture was made with, from its `drop_flags` metadata; else the official ones."""
    if "drop_flags" not in metadata:
        return GroundingDrops.for_config(config)
    flags = json.loads(metadata["drop_flags"])[f"test_{config}"]
    return GroundingDrops(
        boxes=flags["test_drop_boxes"],
        points=flags["test_drop_points"],
        scribbles=flags["test_drop_scribbles"],
        masks=flags["test_drop_masks"],
    )


def dense_segs(fixture: dict[str, torch.Tensor], batch: int, slots: int = 30) -> torch.Tensor:
    """Rebuild the (B, 30, H, W) mask image from the fixtures' compact form (README section 2)."""
    masks = fixture["segs_u8"]
    segs = torch.zeros(batch, slots, *masks.shape[-2:])
    for k in range(masks.shape[0]):
        segs[fixture["segs_batch_index"][k], fixture["segs_slot_index"][k]] = masks[k].float()
    return segs


def assert_close(actual: torch.Tensor, expected: torch.Tensor, max_abs: float, rel_l2: float, what: str) -> None:
    actual, expected = actual.detach().double(), expected.double()
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    diff = (actual - expected).abs().max().item()
    rel = ((actual - expected).norm() / expected.norm().clamp_min(1e-30)).item()
    assert diff <= max_abs and rel <= rel_l2, (
        f"{what}: max|d| {diff:.3g} (<= {max_abs}), rel-L2 {rel:.3g} (<= {rel_l2})"
    )
