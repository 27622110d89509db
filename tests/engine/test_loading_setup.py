"""What loading starts from, before any weights are read: the bundled SD1.5 configs and CLIP tokenizer,
where SD1.5 is (a diffusers folder, a Hugging Face cache entry, a single file), and the device and dtype.

The SD1.5 layouts are tiny SD1.5-shaped models on disk (fixtures in tests/engine/conftest.py); loading their
weights is tested in test_loading.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import huggingface_hub.constants
import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.schedulers.scheduling_pndm import PNDMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from engine.devices import select_device, select_dtype
from engine.model_configs import load_tokenizer, read_model_config
from engine.models.builder import SD15_UNET, InstanceUNetConfig, build_instance_unet
from engine.sd15_source import SD15_CONFIGS, resolve_sd15
from tests.conftest import REPO_ROOT
from tests.engine.tiny_sd import CACHE_COMMIT


def test_the_bundled_configs_are_in_resources() -> None:
    assert (REPO_ROOT / "resources" / "sd15").resolve() == SD15_CONFIGS


# --- bundled configs ---------------------------------------------------------------------------


def test_bundled_unet_config_is_sd15_with_its_parameter_count() -> None:
    config = read_model_config(SD15_CONFIGS / "unet" / "config.json", UNet2DConditionModel)
    for key, value in SD15_UNET.items():
        assert config[key] == (list(value) if isinstance(value, tuple) else value), key
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config)
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
    instance = build_instance_unet(InstanceUNetConfig(unet=config), device="meta")
    reference = build_instance_unet(InstanceUNetConfig(), device="meta")
    assert {k: v.shape for k, v in instance.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }


def test_bundled_vae_config_is_sd15_with_its_parameter_count() -> None:
    config = read_model_config(SD15_CONFIGS / "vae" / "config.json", AutoencoderKL)
    with torch.device("meta"):
        vae = AutoencoderKL(**config)
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
    assert vae.config.scaling_factor == 0.18215
    assert 2 ** (len(vae.config.block_out_channels) - 1) == 8  # the latent scale factor
    assert vae.config.latent_channels == 4


def test_bundled_text_encoder_config_is_clip_vit_l14_text() -> None:
    config = CLIPTextConfig.from_pretrained(SD15_CONFIGS / "text_encoder", local_files_only=True)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.max_position_embeddings, config.vocab_size, config.hidden_act) == (77, 49408, "quick_gelu")
    with torch.device("meta"):
        model = CLIPTextModel(config)
    assert sum(p.numel() for p in model.parameters()) == 123_060_480


def test_bundled_scheduler_is_sd15_pndm() -> None:
    scheduler = PNDMScheduler.from_pretrained(SD15_CONFIGS / "scheduler", local_files_only=True)
    config = scheduler.config
    assert (config.beta_start, config.beta_end, config.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert (config.skip_prk_steps, config.set_alpha_to_one, config.steps_offset) == (True, False, 1)
    scheduler.set_timesteps(10)
    assert scheduler.timesteps[:3].tolist() == [901, 801, 801]  # PLMS warm-up repeats the first step


def test_model_index_lists_the_pipeline_components() -> None:
    index = json.loads((SD15_CONFIGS / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["safety_checker"] == [None, None]


# --- tokenizer ---------------------------------------------------------------------------------


def test_bundled_tokenizer_gives_clip_ids_and_pads_to_77() -> None:
    tokenizer = load_tokenizer(SD15_CONFIGS / "tokenizer")
    assert tokenizer("a photo of a corgi")["input_ids"] == [49406, 320, 1125, 539, 320, 31320, 49407]
    assert tokenizer.model_max_length == 77
    padded = tokenizer("a corgi", padding="max_length", max_length=tokenizer.model_max_length)["input_ids"]
    assert len(padded) == 77 and padded[-1] == 49407
    long = tokenizer("corgi " * 200, truncation=True, max_length=tokenizer.model_max_length)["input_ids"]
    assert len(long) == 77 and long[-1] == 49407


def test_tokenizer_loads_with_local_files_only(monkeypatch: pytest.MonkeyPatch, no_network: list[Any]) -> None:
    seen: list[dict[str, Any]] = []
    original = CLIPTokenizer.from_pretrained.__func__  # type: ignore[attr-defined]  # a bound classmethod's function

    def spy(cls: type[CLIPTokenizer], *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(CLIPTokenizer, "from_pretrained", classmethod(spy))
    load_tokenizer(SD15_CONFIGS / "tokenizer")
    assert seen and all(kwargs.get("local_files_only") is True for kwargs in seen)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert huggingface_hub.constants.is_offline_mode()


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_clip_tokenizer", REPO_ROOT / "scripts" / "make_clip_tokenizer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundled_vocab_is_what_the_script_builds_from_the_merges() -> None:
    """vocab.json and merges.txt agree with OpenAI's construction (the BPE file itself needs the network)."""
    folder = SD15_CONFIGS / "tokenizer"
    merges = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    vocab, rebuilt = _script().vocab_and_merges("\n".join(["#version: 0.2", *merges, ""]))
    assert rebuilt == merges and len(merges) == 48894
    assert json.loads((folder / "vocab.json").read_text(encoding="utf-8")) == vocab
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000
    assert not (folder / "tokenizer.json").exists()


# --- resolving where SD1.5 is --------------------------------------------------------------------


def test_resolve_a_diffusers_folder(sd_folder: Path) -> None:
    source = resolve_sd15(sd_folder)
    assert (source.kind, source.path, source.configs) == ("diffusers", sd_folder, sd_folder)
    assert source.tokenizer == sd_folder / "tokenizer"
    assert source.weights == {
        "unet": sd_folder / "unet" / "diffusion_pytorch_model.safetensors",
        "vae": sd_folder / "vae" / "diffusion_pytorch_model.safetensors",
        "text_encoder": sd_folder / "text_encoder" / "model.safetensors",
    }


@pytest.mark.parametrize("where", ["root", "entry", "snapshot"])
def test_resolve_a_hugging_face_cache(hub_cache: Path, where: str) -> None:
    entry = hub_cache / "models--runwayml--stable-diffusion-v1-5"
    snapshot = entry / "snapshots" / CACHE_COMMIT
    given = {"root": hub_cache, "entry": entry, "snapshot": snapshot}[where]
    source = resolve_sd15(given)
    assert source.kind == "diffusers" and source.path == snapshot


def test_a_cache_entry_without_refs_uses_its_snapshot(hub_cache: Path, tmp_path: Path) -> None:
    entry = Path(shutil.copytree(hub_cache / "models--runwayml--stable-diffusion-v1-5", tmp_path / "models--a--b"))
    (entry / "refs" / "main").unlink()
    assert resolve_sd15(entry).path == entry / "snapshots" / CACHE_COMMIT


def test_a_folder_without_a_tokenizer_uses_the_bundled_one(folder_copy: Path) -> None:
    shutil.rmtree(folder_copy / "tokenizer")
    assert resolve_sd15(folder_copy).tokenizer == SD15_CONFIGS / "tokenizer"


def test_resolve_a_single_file(single_files: dict[str, Path]) -> None:
    source = resolve_sd15(single_files["safetensors"])
    assert (source.kind, source.configs) == ("single_file", SD15_CONFIGS)
    assert source.weights == {"checkpoint": single_files["safetensors"]}


# --- device and dtype ----------------------------------------------------------------------------


def _machine(monkeypatch: pytest.MonkeyPatch, *, cuda: bool, mps: bool, bf16: bool = True, gpus: int = 1) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus if cuda else 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_device_prefers_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: bool, mps: bool, expected: str
) -> None:
    _machine(monkeypatch, cuda=cuda, mps=mps)
    assert select_device() == torch.device(expected)
    assert select_device("cpu") == torch.device("cpu")


def test_an_unavailable_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=False, mps=False)
    with pytest.raises(ValueError, match="'cuda' was chosen but CUDA is not available"):
        select_device("cuda")
    with pytest.raises(ValueError, match="MPS is not available"):
        select_device("mps")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        select_device("tpu")
    _machine(monkeypatch, cuda=True, mps=False, gpus=1)
    assert select_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match=r"only 1 CUDA device"):
        select_device("cuda:3")


@pytest.mark.parametrize(
    ("device", "preference", "expected"),
    [
        ("cuda", "auto", torch.float16),
        ("mps", "auto", torch.float16),
        ("cpu", "auto", torch.float32),
        ("cuda", "bf16", torch.bfloat16),
        ("cuda", "fp32", torch.float32),
        ("cpu", "bf16", torch.bfloat16),
        ("cpu", "fp32", torch.float32),
        ("mps", "fp32", torch.float32),
    ],
)
def test_dtype_rules(monkeypatch: pytest.MonkeyPatch, device: str, preference: str, expected: torch.dtype) -> None:
    _machine(monkeypatch, cuda=True, mps=True)
    assert select_dtype(torch.device(device), preference) == expected


def test_impossible_dtypes_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    _machine(monkeypatch, cuda=True, mps=False, bf16=False)
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        select_dtype(torch.device("cpu"), "fp16")
    with pytest.raises(ValueError, match="does not support bfloat16"):
        select_dtype(torch.device("cuda"), "bf16")
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        select_dtype("cpu", "int8")
