"""The official checkpoint -> adapter -> model path, on a tiny model with the official key names."""

import json
from pathlib import Path

import pytest
import torch

from engine.checkpoint import (
    CheckpointMismatchError,
    adapter_part,
    convert_official_checkpoint,
    load_adapter,
    manifest_path,
    official_unet_state,
    read_adapter,
)
from engine.models.builder import build_instance_unet
from engine.weights_io import CorruptWeightsError, NonFiniteWeightsError, UnsafeCheckpointError
from tests.engine.tiny_sd import TINY_CONFIG, tiny_unet, unet_to_ldm

CONFIG = TINY_CONFIG


@pytest.fixture(scope="module")
def trained() -> torch.nn.Module:
    return tiny_unet(seed=11)


def write_official(path: Path, trained: torch.nn.Module, **extra: object) -> Path:
    state = unet_to_ldm(trained.state_dict())
    torch.save(
        {"ema": state, "model": {k: torch.zeros_like(v) for k, v in state.items()}, "iters": 12000, **extra}, path
    )
    return path


def test_official_checkpoint_becomes_an_adapter_that_loads_exactly(tmp_path: Path, trained: torch.nn.Module) -> None:
    source = write_official(tmp_path / "instancediffusion_sd15.pth", trained)
    adapter = tmp_path / "adapter.safetensors"
    manifest = convert_official_checkpoint(source, adapter, CONFIG)
    assert manifest.tensors == sum(1 for k in trained.state_dict() if adapter_part(k))
    assert json.loads(manifest_path(adapter).read_text())["source_sha256"] == manifest.source_sha256

    fresh = build_instance_unet(TINY_CONFIG)
    load_adapter(fresh, adapter)
    expected = trained.state_dict()
    for name, tensor in fresh.state_dict().items():
        if ".fuser." in name or name.startswith(("position_net.", "scaleu.")):
            assert torch.equal(tensor, expected[name]), f"{name} was not taken from the ema weights"


def test_ema_is_preferred_over_model() -> None:
    ema, model = {"a": torch.ones(1)}, {"a": torch.zeros(1)}
    assert official_unet_state({"model": model, "ema": ema}, "x.pth")["a"] is ema["a"]
    assert official_unet_state({"model": model}, "x.pth")["a"] is model["a"]
    with pytest.raises(CorruptWeightsError, match=r"x\.pth: no 'ema' or 'model' state dict"):
        official_unet_state({"state_dict": model}, "x.pth")


def test_a_changed_adapter_is_refused(tmp_path: Path, trained: torch.nn.Module) -> None:
    adapter = tmp_path / "adapter.safetensors"
    convert_official_checkpoint(write_official(tmp_path / "src.pth", trained), adapter, CONFIG)
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 0xFF
    adapter.write_bytes(bytes(data))
    with pytest.raises(CorruptWeightsError, match="SHA-256 does not match the manifest"):
        read_adapter(adapter)
    manifest_path(adapter).unlink()
    with pytest.raises(CorruptWeightsError, match=r"manifest .* is missing"):
        read_adapter(adapter)


def test_nan_weights_are_refused_at_conversion(tmp_path: Path, trained: torch.nn.Module) -> None:
    state = unet_to_ldm(trained.state_dict())
    state["position_net.null_point_feature"] = state["position_net.null_point_feature"].clone()  # not the fixture's
    state["position_net.null_point_feature"][3] = float("nan")
    source = tmp_path / "nan.pth"
    torch.save({"ema": state}, source)
    with pytest.raises(NonFiniteWeightsError, match=r"position_net\.null_point_feature"):
        convert_official_checkpoint(source, tmp_path / "adapter.safetensors", CONFIG)
    assert not (tmp_path / "adapter.safetensors").exists()


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path, trained: torch.nn.Module) -> None:
    plain = {
        k: v
        for k, v in unet_to_ldm(trained.state_dict()).items()
        if ".fuser." not in k and not k.startswith(("position_net", "scaleu"))
    }
    source = tmp_path / "sd15.pth"
    torch.save({"model": plain}, source)
    with pytest.raises(CheckpointMismatchError, match="not an InstanceDiffusion checkpoint"):
        convert_official_checkpoint(source, tmp_path / "adapter.safetensors", CONFIG)


class Canary:
    """Unpickling this would create a file; the converter must refuse before that can happen."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(self.path),))  # type: ignore[return-value]


def test_a_hostile_checkpoint_runs_nothing_during_conversion(tmp_path: Path, trained: torch.nn.Module) -> None:
    canary = tmp_path / "pwned"
    source = write_official(tmp_path / "evil.pth", trained, config_dict=Canary(canary))
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth: refused to load"):
        convert_official_checkpoint(source, tmp_path / "adapter.safetensors", CONFIG)
    assert not canary.exists()
    assert not (tmp_path / "adapter.safetensors").exists()
