"""Offline loading of the weights: the three SD1.5 layouts, the adapter, missing and broken files, single
LDM files, and the model settings that say where the files are.

Everything runs on tiny SD1.5-shaped models written to disk the way users have SD1.5: a diffusers folder,
a Hugging Face cache entry, and a single LDM-layout file (fixtures in tests/engine/conftest.py). Sockets are
blocked where a load could be tempted to reach the hub. What loading starts from (bundled configs, where
SD1.5 is, device and dtype) is in test_loading_setup.py.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import engine.model_hashes
from engine.checkpoint import CheckpointMismatchError, adapter_part, convert_official_checkpoint
from engine.loading import LoadedModels, load_components
from engine.model_settings import ModelSettings, ModelSettingsError
from engine.models.builder import InstanceUNetConfig, scaleu_of
from engine.models.fusers import fusers
from engine.sd15_source import UnsupportedModelFileError, resolve_sd15
from engine.weights_io import CorruptWeightsError, WeightFileMissingError, sha256_file, write_safetensors_atomic
from tests.engine.tiny_sd import (
    TINY_CONFIG,
    TinySd,
    fake_official_checkpoint,
    ldm_single_file_state,
    random_added_parts,
)

# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def added() -> dict[str, torch.Tensor]:
    return random_added_parts()


@pytest.fixture(scope="module")
def adapter(tiny: TinySd, added: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapter converted from a fake official .pth (LDM names) by the real converter."""
    folder = tmp_path_factory.mktemp("adapter")
    source = fake_official_checkpoint(tiny, added, folder / "instancediffusion_tiny.pth")
    target = folder / "instancediffusion_tiny.safetensors"
    convert_official_checkpoint(source, target, TINY_CONFIG)
    return target


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: torch.nn.Module | dict[str, torch.Tensor], b: torch.nn.Module) -> None:
    left = a if isinstance(a, dict) else a.state_dict()
    right = b.state_dict()
    assert set(left) == set(right)
    for key, value in left.items():
        assert torch.equal(value, right[key]), key


def assert_same_models(a: LoadedModels, b: LoadedModels) -> None:
    assert_same_state(a.unet, b.unet)
    assert_same_state(a.vae, b.vae)
    assert_same_state(a.text_encoder, b.text_encoder)


# --- missing and broken files --------------------------------------------------------------------


def _missing(call: Any, *, names: str) -> str:
    started = time.perf_counter()
    with pytest.raises(WeightFileMissingError) as info:
        call()
    assert time.perf_counter() - started < 2.0
    message = str(info.value)
    assert names in message
    return message


def test_a_missing_sd15_path_names_it_and_says_what_to_put_there(tmp_path: Path, no_network: list[Any]) -> None:
    message = _missing(lambda: load_components(tmp_path / "nowhere", unet_config=TINY_CONFIG), names="nowhere")
    assert "Stable Diffusion 1.5 folder" in message and "v1-5-pruned-emaonly.safetensors" in message
    assert "Settings → Models" in message


@pytest.mark.parametrize(
    ("remove", "named"),
    [
        ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.safetensors"),
        ("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"),
        ("text_encoder/model.safetensors", "text_encoder/model.safetensors"),
        ("unet/config.json", "unet/config.json"),
        ("scheduler", "scheduler/scheduler_config.json"),
        ("model_index.json", "model_index.json"),
    ],
)
def test_a_missing_file_in_the_folder_is_named_fast_and_offline(
    folder_copy: Path, remove: str, named: str, no_network: list[Any]
) -> None:
    target = folder_copy / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    message = _missing(lambda: load_components(folder_copy, unet_config=TINY_CONFIG), names=named)
    assert "Settings → Models" in message


def test_a_cache_entry_pointing_at_a_missing_snapshot(hub_cache: Path, tmp_path: Path, no_network: list[Any]) -> None:
    entry = Path(shutil.copytree(hub_cache / "models--runwayml--stable-diffusion-v1-5", tmp_path / "models--a--b"))
    (entry / "refs" / "main").write_text("0123abcd")
    _missing(lambda: resolve_sd15(entry), names="snapshots/0123abcd/model_index.json")
    (entry / "refs" / "main").write_text("../../etc")
    with pytest.raises(CorruptWeightsError, match="does not name a snapshot"):
        resolve_sd15(entry)


def test_a_missing_adapter_fails_before_reading_sd15(sd_folder: Path, tmp_path: Path, no_network: list[Any]) -> None:
    message = _missing(
        lambda: load_components(sd_folder, unet_config=TINY_CONFIG, adapter=tmp_path / "adapter.safetensors"),
        names="adapter.safetensors",
    )
    assert "convert the official instancediffusion_sd15.pth" in message


def test_a_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "model.onnx"
    file.write_bytes(b"\0" * 16)
    with pytest.raises(UnsupportedModelFileError, match=r"model\.onnx: not a Stable Diffusion 1\.5 model"):
        resolve_sd15(file)


def test_a_corrupt_unet_file_is_a_corrupt_weights_error(folder_copy: Path) -> None:
    (folder_copy / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x10\x00\x00\x00garbage")
    with pytest.raises(CorruptWeightsError, match=r"diffusion_pytorch_model\.safetensors: not a readable safetensors"):
        load_components(folder_copy, unet_config=TINY_CONFIG)


def test_a_corrupt_vae_file_is_a_corrupt_weights_error(folder_copy: Path) -> None:
    file = folder_copy / "vae" / "diffusion_pytorch_model.safetensors"
    file.write_bytes(file.read_bytes()[:1000])
    with pytest.raises(CorruptWeightsError, match="could not load the VAE"):
        load_components(folder_copy, unet_config=TINY_CONFIG)


def test_a_unet_file_missing_tensors_lists_them(folder_copy: Path, tiny: TinySd) -> None:
    state = state_of(tiny.unet)
    del state["conv_in.weight"]
    write_safetensors_atomic(state, folder_copy / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointMismatchError, match=r"1 missing keys: conv_in\.weight"):
        load_components(folder_copy, unet_config=TINY_CONFIG)


def test_a_unet_of_another_size_lists_the_wrong_shapes(sd_folder: Path) -> None:
    with pytest.raises(CheckpointMismatchError, match=r"diffusion_pytorch_model\.safetensors: .*wrong shapes"):
        load_components(sd_folder, unet_config=InstanceUNetConfig())  # SD1.5 size against tiny weights


# --- loading -------------------------------------------------------------------------------------


def test_folder_and_cache_entry_load_the_same_weights(
    sd_folder: Path, hub_cache: Path, adapter: Path, tiny: TinySd, no_network: list[Any]
) -> None:
    from_folder = load_components(sd_folder, unet_config=TINY_CONFIG, adapter=adapter)
    entry = hub_cache / "models--runwayml--stable-diffusion-v1-5"
    from_cache = load_components(entry, unet_config=TINY_CONFIG, adapter=adapter)
    assert_same_models(from_folder, from_cache)
    assert from_folder.hashes == from_cache.hashes
    assert from_folder.hashes["unet"] == sha256_file(sd_folder / "unet" / "diffusion_pytorch_model.safetensors")
    base = {k: v for k, v in from_folder.unet.state_dict().items() if not adapter_part(k)}
    assert_same_state(base, tiny.unet)
    assert_same_state(from_folder.vae, tiny.vae)
    assert_same_state(from_folder.text_encoder, tiny.text_encoder)
    assert from_folder.scheduler_config["_class_name"] == "PNDMScheduler"
    assert from_folder.tokenizer("a photo of a corgi")["input_ids"][-1] == 49407


def test_without_an_adapter_the_added_parts_are_inert_and_not_grounded(sd_folder: Path) -> None:
    models = load_components(sd_folder, unet_config=TINY_CONFIG)
    assert not models.grounded and "adapter" not in models.hashes
    assert len(fusers(models.unet)) == 16
    assert all(
        float(f.get_parameter("alpha_attn")) == float(f.get_parameter("alpha_dense")) == 0 for f in fusers(models.unet)
    )
    scaleu = dict(scaleu_of(models.unet).named_parameters())
    assert all(torch.count_nonzero(v) == 0 for v in scaleu.values())
    every = [*models.unet.parameters(), *models.vae.parameters(), *models.text_encoder.parameters()]
    assert not any(p.is_meta or p.requires_grad for p in every)
    assert not models.unet.training and not models.vae.training and not models.text_encoder.training


def test_the_loaded_unet_renders_and_the_adapter_changes_the_grounded_output(sd_folder: Path, adapter: Path) -> None:
    models = load_components(sd_folder, unet_config=TINY_CONFIG, adapter=adapter)
    n = TINY_CONFIG.position_net.max_objs
    torch.manual_seed(0)
    latents, text = torch.randn(1, 4, 16, 16), torch.randn(1, 77, 32)
    grounding = {"boxes": torch.rand(1, n, 4), "masks": torch.ones(1, n), "positive_embeddings": torch.randn(1, n, 32)}
    with torch.no_grad():
        plain = models.unet(latents, 10, encoder_hidden_states=text, return_dict=False)[0]
        grounded = models.unet(
            latents, 10, encoder_hidden_states=text, cross_attention_kwargs={"gligen": grounding}, return_dict=False
        )[0]
    assert plain.shape == grounded.shape == (1, 4, 16, 16)
    assert torch.isfinite(grounded).all() and not torch.allclose(plain, grounded)


def test_the_adapter_tensors_end_up_in_the_unet(
    sd_folder: Path, adapter: Path, added: dict[str, torch.Tensor], tiny: TinySd
) -> None:
    models = load_components(sd_folder, unet_config=TINY_CONFIG, adapter=adapter)
    assert models.grounded
    assert models.hashes["adapter"] == sha256_file(adapter)
    state = models.unet.state_dict()
    assert set(added) == {k for k in state if adapter_part(k)}
    for key, value in added.items():
        assert torch.equal(state[key], value), key
    assert_same_state({k: v for k, v in state.items() if not adapter_part(k)}, tiny.unet)


def test_repeated_loads_do_not_rehash(folder_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hashed: list[str] = []

    def counting(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
        hashed.append(Path(path).name)
        return sha256_file(path, chunk_size)

    monkeypatch.setattr(engine.model_hashes, "sha256_file", counting)
    first = load_components(folder_copy, unet_config=TINY_CONFIG)
    assert sorted(hashed) == ["diffusion_pytorch_model.safetensors"] * 2 + ["model.safetensors"]
    hashed.clear()
    assert load_components(folder_copy, unet_config=TINY_CONFIG).hashes == first.hashes
    assert hashed == []
    vae_file = folder_copy / "vae" / "diffusion_pytorch_model.safetensors"
    os.utime(vae_file, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    load_components(folder_copy, unet_config=TINY_CONFIG)
    assert hashed == ["diffusion_pytorch_model.safetensors"]


def test_device_and_dtype_apply_to_every_component(sd_folder: Path) -> None:
    models = load_components(sd_folder, unet_config=TINY_CONFIG, device="cpu", dtype=torch.bfloat16)
    assert (models.device, models.dtype) == (torch.device("cpu"), torch.bfloat16)
    for model in (models.unet, models.vae, models.text_encoder):
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
        assert {p.device.type for p in model.parameters()} == {"cpu"}


# --- single LDM file -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["safetensors", "ckpt"])
def test_a_single_file_loads_the_same_weights_as_the_folder(
    kind: str, single_files: dict[str, Path], sd_folder: Path, adapter: Path, no_network: list[Any]
) -> None:
    source = resolve_sd15(single_files[kind], configs_dir=sd_folder)  # the tiny configs stand in for the bundled
    single = load_components(source, unet_config=TINY_CONFIG, adapter=adapter)
    folder = load_components(sd_folder, unet_config=TINY_CONFIG, adapter=adapter)
    assert_same_models(single, folder)
    assert single.hashes == {"checkpoint": sha256_file(single_files[kind]), "adapter": folder.hashes["adapter"]}
    assert single.tokenizer("a photo of a corgi")["input_ids"] == folder.tokenizer("a photo of a corgi")["input_ids"]


def test_a_single_file_without_the_configs_default_is_the_bundled_sd15(single_files: dict[str, Path]) -> None:
    with pytest.raises(CheckpointMismatchError, match=r"v1-5-tiny\.safetensors: .*wrong shapes"):
        load_components(single_files["safetensors"])  # tiny weights against the SD1.5 configs


def test_a_corrupt_single_file_is_a_corrupt_weights_error(tmp_path: Path, sd_folder: Path) -> None:
    for name in ("broken.safetensors", "broken.ckpt"):
        file = tmp_path / name
        file.write_bytes(b"this is not a checkpoint")
        with pytest.raises(CorruptWeightsError, match=name.replace(".", r"\.")):
            load_components(resolve_sd15(file, configs_dir=sd_folder), unet_config=TINY_CONFIG)


def test_a_single_file_without_a_vae_says_so(tmp_path: Path, tiny: TinySd, sd_folder: Path) -> None:
    state = {k: v for k, v in ldm_single_file_state(tiny).items() if not k.startswith("first_stage_model.")}
    write_safetensors_atomic(state, tmp_path / "unet-only.safetensors")
    with pytest.raises(CorruptWeightsError, match=r"no VAE weights \(first_stage_model\.\*\)"):
        load_components(
            resolve_sd15(tmp_path / "unet-only.safetensors", configs_dir=sd_folder), unet_config=TINY_CONFIG
        )


def test_single_file_configs_must_be_complete(single_files: dict[str, Path], tmp_path: Path) -> None:
    _missing(lambda: resolve_sd15(single_files["ckpt"], configs_dir=tmp_path), names="unet/config.json")


# --- model settings ------------------------------------------------------------------------------


def test_settings_round_trip(tmp_path: Path) -> None:
    settings = ModelSettings(sd15=tmp_path / "sd15", adapter=tmp_path / "a.safetensors", device="cuda:1", dtype="bf16")
    file = tmp_path / "conf" / "models.json"
    settings.save(file)
    assert ModelSettings.load(file) == settings
    assert ModelSettings.load(tmp_path / "none.json", missing_ok=True) == ModelSettings()
    ModelSettings().save(file)
    assert ModelSettings.load(file) == ModelSettings(None, None, "auto", "auto")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON (line 1"),
        ("[1, 2]", "expected a JSON object, found list"),
        ('{"sd15": 3}', "'sd15' must be a path"),
        ('{"device": "tpu"}', "device must be one of"),
        ('{"dtype": 16}', "'dtype' must be a string"),
        ('{"dtype": "int8"}', "dtype must be one of"),
        ('{"sd_15": "/x"}', "unknown setting: sd_15"),
        ('{"version": 9}', "settings version 9 is not supported"),
    ],
)
def test_malformed_settings_name_the_file(tmp_path: Path, text: str, reason: str) -> None:
    file = tmp_path / "models.json"
    file.write_text(text)
    with pytest.raises(ModelSettingsError) as info:
        ModelSettings.load(file)
    assert str(info.value).startswith(f"{file}: ") and reason in str(info.value)


def test_missing_settings_are_an_error_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(ModelSettingsError, match="settings file not found"):
        ModelSettings.load(tmp_path / "models.json")


def test_a_failed_save_keeps_the_previous_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "models.json"
    ModelSettings(sd15=Path("/old")).save(file)
    before = file.read_bytes()

    def full_disk(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("common.atomic_files.os.replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ModelSettings(sd15=Path("/new")).save(file)
    assert file.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["models.json"]
