import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.checkpoint import convert_official_unet, load_weights
from engine.models.builder import InstanceUNetConfig, build_instance_unet
from engine.pipeline import InstanceDiffusionPipeline
from engine.weights_io import write_safetensors_atomic
from tests.engine.tiny_sd import (
    TinySd,
    build_tiny_sd,
    ldm_single_file_state,
    write_cache_entry,
    write_diffusers_folder,
)


@pytest.fixture(scope="session")
def recipe_unet() -> UNet2DConditionModel:
    """The full-size UNet (1.2 B parameters) with the parity recipe's weights, loaded through our converter."""
    from tests.engine.parity import parity_dir, recipe_state_dict

    parity_dir()  # skip before building 1.2 B parameters when there are no fixtures to compare with
    config = InstanceUNetConfig()
    unet = build_instance_unet(config, device="meta")
    load_weights(unet, convert_official_unet(recipe_state_dict(), config.unet_kwargs(), "recipe"), "recipe")
    return unet.eval()


@pytest.fixture(scope="module")
def pipe() -> InstanceDiffusionPipeline:
    """A tiny real pipeline (diffusers UNet/VAE, transformers CLIP, the bundled tokenizer)."""
    from tests.engine.tiny_sd import tiny_pipeline

    return tiny_pipeline()


@pytest.fixture(scope="module")
def tiny() -> TinySd:
    """A tiny SD1.5-shaped model (random weights), built from configs."""
    return build_tiny_sd()


@pytest.fixture(scope="module")
def sd_folder(tiny: TinySd, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model written as a diffusers folder, as users keep SD1.5."""
    return write_diffusers_folder(tiny, tmp_path_factory.mktemp("diffusers") / "stable-diffusion-v1-5")


# --- SD1.5 the ways users keep it, and a network that must not be used (the loading tests) ---


@pytest.fixture(scope="module")
def hub_cache(sd_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache root (what HF_HUB_CACHE points at) holding SD1.5's entry."""
    root = tmp_path_factory.mktemp("hub")
    write_cache_entry(sd_folder, root)
    return root


@pytest.fixture(scope="module")
def single_files(tiny: TinySd, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("single")
    state = ldm_single_file_state(tiny)
    write_safetensors_atomic(state, folder / "v1-5-tiny.safetensors")
    torch.save({"state_dict": state, "global_step": 7}, folder / "v1-5-tiny.ckpt")
    return {"safetensors": folder / "v1-5-tiny.safetensors", "ckpt": folder / "v1-5-tiny.ckpt"}


@pytest.fixture
def folder_copy(sd_folder: Path, tmp_path: Path) -> Path:
    """A private copy to break (and a cold hash cache, since its paths are new)."""
    return Path(shutil.copytree(sd_folder, tmp_path / "sd15"))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any connection attempt fails the test loudly (and is recorded)."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"network access attempted: {address!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts
    assert attempts == []
