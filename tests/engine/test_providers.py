from pathlib import Path

import pytest
import torch

from engine.checkpoint import convert_official_checkpoint
from engine.model_settings import ModelSettings
from engine.providers import settings_provider
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from engine.runner import ModelFilesError, Runner
from tests.engine.tiny_sd import (
    TINY_CONFIG,
    build_tiny_sd,
    fake_official_checkpoint,
    random_added_parts,
    write_diffusers_folder,
)


def test_sd15_renders_from_the_configured_folder_and_adapter(tmp_path: Path) -> None:
    parts = build_tiny_sd()
    folder = write_diffusers_folder(parts, tmp_path / "sd15")
    source = fake_official_checkpoint(parts, random_added_parts(), tmp_path / "official.pth")
    adapter = tmp_path / "adapter.safetensors"
    convert_official_checkpoint(source, adapter, TINY_CONFIG)
    runner = Runner(settings_provider(ModelSettings(sd15=folder, adapter=adapter, device="cpu"), TINY_CONFIG))
    request = RenderRequest(
        prompt="shapes",
        width=64,
        height=64,
        steps=3,
        model_id="sd15",
        instances=(InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),),
    )
    result = runner.render(request)
    assert result.image.shape == (64, 64, 3)
    assert set(result.model_hashes) >= {"unet", "vae", "text_encoder", "adapter"}
    assert result.dtype == "float32" and result.device == "cpu"


@pytest.mark.parametrize(
    ("settings", "model_id", "message"),
    [
        (ModelSettings(), "demo", "demo model is not in this copy of the app"),
        (ModelSettings(), "sdxl", "unknown model 'sdxl'"),
        (ModelSettings(), "sd15", "Stable Diffusion 1.5 is not configured"),
        (ModelSettings(sd15=Path("/nowhere")), "sd15", "no InstanceDiffusion adapter is configured"),
        (ModelSettings(sd15=Path("/nowhere"), adapter=Path("/a.safetensors")), "sd15", "/nowhere: file not found"),
    ],
)
def test_what_is_missing_is_said_in_words(
    settings: ModelSettings, model_id: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ModelFilesError, match=message):
        Runner(settings_provider(settings, demo_dir=tmp_path / "no-demo")).model(model_id)


def test_the_demo_model_renders_when_bundled(tmp_path: Path) -> None:
    from engine.demo.model import DemoModelConfig, build_demo_components, save_demo

    torch.manual_seed(0)
    save_demo(build_demo_components(DemoModelConfig(), tmp_path / "tok"), DemoModelConfig(), tmp_path / "demo")
    runner = Runner(settings_provider(ModelSettings(), demo_dir=tmp_path / "demo"))
    request = RenderRequest(
        prompt="a red circle on a grey background",
        width=64,
        height=64,
        steps=3,
        instances=(InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),),
    )
    assert request.model_id == "demo"
    result = runner.render(request)
    assert result.image.shape == (64, 64, 3)
    assert set(result.model_hashes) == {"text_encoder", "unet", "vae"}
