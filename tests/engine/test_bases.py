"""Fine-tuned SD1.5-architecture bases, chosen per scene by name (issue 17): a diffusers folder or a single
file configured in `ModelSettings.bases` renders with its own weights and the adapter, and the render's
hashes name the base; an unknown model id is a clear error listing the ids there are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.checkpoint import convert_official_checkpoint
from engine.model_hashes import file_sha256
from engine.model_ids import available_model_ids
from engine.model_settings import ModelSettings
from engine.providers import settings_provider
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from engine.runner import ModelFilesError, RenderResult, Runner
from engine.sd15_source import SD15_CONFIGS
from engine.weights_io import write_safetensors_atomic
from tests.engine.tiny_sd import (
    TINY_CONFIG,
    build_tiny_sd,
    fake_official_checkpoint,
    ldm_single_file_state,
    random_added_parts,
    write_diffusers_folder,
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SD1.5 (seed 0), a fine-tune of it as a folder and another as a single file, and one adapter."""
    root = tmp_path_factory.mktemp("bases")
    sd15 = build_tiny_sd(0)
    adapter = root / "adapter.safetensors"
    convert_official_checkpoint(
        fake_official_checkpoint(sd15, random_added_parts(), root / "official.pth"), adapter, TINY_CONFIG
    )
    single = root / "single-tune.safetensors"
    write_safetensors_atomic(ldm_single_file_state(build_tiny_sd(2)), single)
    return {
        "sd15": write_diffusers_folder(sd15, root / "sd15"),
        "folder": write_diffusers_folder(build_tiny_sd(1), root / "folder-tune"),
        "single": single,
        "adapter": adapter,
    }


def _settings(models: dict[str, Path]) -> ModelSettings:
    return ModelSettings(
        sd15=models["sd15"],
        adapter=models["adapter"],
        device="cpu",
        bases={"mybase": models["folder"], "single tune": models["single"]},
    )


def _render(runner: Runner, model_id: str) -> RenderResult:
    request = RenderRequest(
        prompt="shapes",
        width=64,
        height=64,
        steps=1,
        seed=5,
        model_id=model_id,
        instances=(InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),),
    )
    return runner.render(request)


def test_a_scene_renders_with_the_base_it_names(
    models: dict[str, Path], no_network: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.sd15_source

    # A single file is read with the bundled SD1.5 configs: the tiny ones stand in for them here.
    monkeypatch.setattr(engine.sd15_source, "SD15_CONFIGS", models["sd15"])
    runner = Runner(settings_provider(_settings(models), TINY_CONFIG))
    sd15 = _render(runner, "sd15")
    folder = _render(runner, "mybase")
    single = _render(runner, "single tune")
    assert not np.array_equal(sd15.image, folder.image)
    assert not np.array_equal(folder.image, single.image)
    adapter = file_sha256(models["adapter"])
    assert sd15.model_hashes["base"] == "sd15"
    assert folder.model_hashes == {
        "base": "mybase",
        "unet": file_sha256(models["folder"] / "unet" / "diffusion_pytorch_model.safetensors"),
        "vae": file_sha256(models["folder"] / "vae" / "diffusion_pytorch_model.safetensors"),
        "text_encoder": file_sha256(models["folder"] / "text_encoder" / "model.safetensors"),
        "adapter": adapter,
    }
    assert single.model_hashes == {
        "base": "single tune",
        "checkpoint": file_sha256(models["single"]),
        "adapter": adapter,
    }


@given(st.text(min_size=1, max_size=80).filter(lambda s: s not in {"sd15", "demo", "mybase", "single tune"}))
def test_an_unknown_model_id_lists_the_models_there_are(model_id: str) -> None:
    settings = ModelSettings(bases={"mybase": Path("/bases/mybase"), "single tune": Path("/bases/x.safetensors")})
    with pytest.raises(ModelFilesError) as caught:
        settings_provider(settings)(model_id)
    message = str(caught.value)
    assert message.startswith("unknown model ") and "\n" not in message
    assert message.endswith("the models are 'sd15', 'demo', 'mybase', 'single tune'")


def test_without_bases_the_error_says_how_to_add_one() -> None:
    with pytest.raises(
        ModelFilesError, match=r"'sd15', 'demo'; add a fine-tuned base with `main.py models set --base"
    ):
        settings_provider(ModelSettings())("realistic-vision")


def test_a_missing_base_file_is_named(tmp_path: Path, models: dict[str, Path]) -> None:
    settings = ModelSettings(adapter=models["adapter"], device="cpu", bases={"gone": tmp_path / "gone.safetensors"})
    with pytest.raises(Exception, match=r"gone\.safetensors: file not found"):
        settings_provider(settings, TINY_CONFIG)("gone")


def test_the_model_ids_are_the_built_in_ones_then_the_bases() -> None:
    assert available_model_ids(None) == ("sd15", "demo")
    settings = ModelSettings(bases={"zeta": SD15_CONFIGS, "alpha": SD15_CONFIGS})
    assert available_model_ids(settings) == ("sd15", "demo", "alpha", "zeta")


def test_a_base_samples_on_its_own_training_schedule_and_low_memory_reaches_the_model(
    models: dict[str, Path], tmp_path: Path
) -> None:
    import json
    import shutil

    from engine.request import Scheduler

    tuned = shutil.copytree(models["folder"], tmp_path / "tuned")
    config_file = tuned / "scheduler" / "scheduler_config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "beta_end": 0.02}))
    settings = ModelSettings(
        sd15=models["sd15"], adapter=models["adapter"], device="cpu", bases={"tuned": tuned}, low_memory=True
    )
    provide = settings_provider(settings, TINY_CONFIG)
    model = provide("tuned")
    assert model.low_memory
    assert model.pipeline.scheduler.config["beta_end"] == 0.02
    for kind in Scheduler:  # every sampler a request can pick runs on the base's schedule
        assert model.pipeline.request_scheduler(kind).config["beta_end"] == 0.02
    assert provide("sd15").pipeline.scheduler.config["beta_end"] == config["beta_end"]
