"""engine.model_check on real files: a tiny diffusers folder, a converted adapter, missing and tampered files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from engine.checkpoint import convert_official_checkpoint, manifest_path
from engine.model_check import Check, check_model_settings
from engine.model_settings import ModelSettings
from engine.weights_io import write_safetensors_atomic
from tests.engine.tiny_sd import (
    TINY_CONFIG,
    TinySd,
    fake_official_checkpoint,
    ldm_single_file_state,
    random_added_parts,
)


@pytest.fixture(scope="module")
def converted(tiny: TinySd, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter written by the real converter from a fake official .pth, with its manifest."""
    folder = tmp_path_factory.mktemp("adapter")
    source = fake_official_checkpoint(tiny, random_added_parts(), folder / "instancediffusion_tiny.pth")
    target = folder / "instancediffusion_tiny.safetensors"
    convert_official_checkpoint(source, target, TINY_CONFIG)
    return target


@pytest.fixture
def adapter(converted: Path, tmp_path: Path) -> Path:
    """A private copy (with its manifest) that a test may tamper with."""
    copy = tmp_path / converted.name
    shutil.copy(converted, copy)
    shutil.copy(manifest_path(converted), manifest_path(copy))
    return copy


def by_part(checks: list[Check]) -> dict[str, Check]:
    assert len({c.part for c in checks}) == len(checks)
    return {c.part: c for c in checks}


def test_a_complete_setup_passes_every_check(sd_folder: Path, adapter: Path) -> None:
    checks = by_part(check_model_settings(ModelSettings(sd15=sd_folder, adapter=adapter, device="cpu", dtype="fp32")))
    assert set(checks) == {"sd15", "adapter", "device"}  # no demo row once a model is set
    assert all(c.ok for c in checks.values())
    assert checks["sd15"].message == f"{sd_folder} (diffusers)"
    assert checks["sd15"].title == "Stable Diffusion 1.5"
    assert checks["adapter"].message == f"{adapter} (SHA-256 matches its manifest)"
    assert checks["device"].message == "renders on cpu in float32"


def test_a_single_file_is_recognised(tiny: TinySd, tmp_path: Path) -> None:
    file = tmp_path / "v1-5-tiny.safetensors"
    write_safetensors_atomic(ldm_single_file_state(tiny), file)
    check = by_part(check_model_settings(ModelSettings(sd15=file)))["sd15"]
    assert check.ok and check.message == f"{file} (single file)"


def test_missing_paths_are_named(tmp_path: Path) -> None:
    sd15, adapter = tmp_path / "nowhere" / "sd15", tmp_path / "gone.safetensors"
    checks = by_part(check_model_settings(ModelSettings(sd15=sd15, adapter=adapter)))
    assert not checks["sd15"].ok and checks["sd15"].message == f"not found: {sd15}"
    assert "diffusers folder" in checks["sd15"].hint
    assert not checks["adapter"].ok and checks["adapter"].message == f"file missing: {adapter}"
    assert "models convert instancediffusion_sd15.pth" in checks["adapter"].command


def test_an_incomplete_folder_names_the_missing_file(sd_folder: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(sd_folder, tmp_path / "sd15")
    (folder / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    check = by_part(check_model_settings(ModelSettings(sd15=folder)))["sd15"]
    assert not check.ok
    assert check.message == f"{folder / 'vae' / 'diffusion_pytorch_model.safetensors'} is missing"
    assert "incomplete" in check.hint


def test_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    check = by_part(check_model_settings(ModelSettings(sd15=tmp_path)))["sd15"]
    assert not check.ok and "model_index.json is missing" in check.message
    assert "neither a diffusers model folder nor a Hugging Face cache entry" in check.hint


def test_a_tampered_adapter_does_not_match_its_manifest(adapter: Path) -> None:
    with adapter.open("r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\x00")
    check = by_part(check_model_settings(ModelSettings(adapter=adapter)))["adapter"]
    assert not check.ok
    assert "SHA-256 does NOT match its manifest — the file changed since it was converted" in check.message
    assert "convert the official checkpoint again" in check.hint


def test_a_manifest_naming_another_hash(adapter: Path) -> None:
    manifest = manifest_path(adapter)
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "adapter_sha256": "0" * 64}))
    assert not by_part(check_model_settings(ModelSettings(adapter=adapter)))["adapter"].ok


def test_an_adapter_without_its_manifest(adapter: Path) -> None:
    manifest_path(adapter).unlink()
    check = by_part(check_model_settings(ModelSettings(adapter=adapter)))["adapter"]
    assert not check.ok and "manifest" in check.message and "is missing" in check.message


def test_the_official_pth_is_not_an_adapter(tiny: TinySd, tmp_path: Path) -> None:
    pth = fake_official_checkpoint(tiny, random_added_parts(), tmp_path / "instancediffusion_sd15.pth")
    check = by_part(check_model_settings(ModelSettings(adapter=pth)))["adapter"]
    assert not check.ok and "not a converted adapter" in check.message
    assert check.command == "python main.py models convert instancediffusion_sd15.pth"


def test_an_unavailable_device_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check = by_part(check_model_settings(ModelSettings(device="cuda")))["device"]
    assert not check.ok and "CUDA is not available" in check.message


def test_fp16_on_the_cpu_is_a_problem() -> None:
    check = by_part(check_model_settings(ModelSettings(device="cpu", dtype="fp16")))["device"]
    assert not check.ok and "fp16 is not supported on the CPU" in check.message


def test_auto_says_what_it_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    check = by_part(check_model_settings(ModelSettings()))["device"]
    assert check.ok and check.message == "renders on cpu in float32 (auto)"


def test_with_neither_model_set_the_demo_model_is_used(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    checks = by_part(check_model_settings(ModelSettings(), demo_dir=demo))
    assert checks["sd15"].message.startswith("not set — choose a diffusers folder") and not checks["sd15"].ok
    assert checks["adapter"].message == "not set" and not checks["adapter"].ok
    assert not checks["demo"].ok and str(demo / "config.json") in checks["demo"].message

    demo.mkdir()
    (demo / "config.json").write_text("{}")
    check = by_part(check_model_settings(ModelSettings(), demo_dir=demo))["demo"]
    assert check.ok and "renders use the bundled demo model" in check.message


def test_no_weights_are_loaded(sd_folder: Path, adapter: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.loading
    import engine.unet_loading
    import engine.weights_io

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the check must not read weights")

    monkeypatch.setattr(engine.weights_io, "read_safetensors", refuse)
    monkeypatch.setattr(engine.unet_loading, "read_safetensors", refuse)
    monkeypatch.setattr(engine.loading, "load_components", refuse)
    checks = check_model_settings(ModelSettings(sd15=sd_folder, adapter=adapter, device="cpu"))
    assert all(c.ok for c in checks)
