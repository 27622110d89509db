from pathlib import Path

import pytest
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.checkpoint import convert_official_unet, load_weights
from engine.models.builder import InstanceUNetConfig, build_instance_unet
from engine.pipeline import InstanceDiffusionPipeline
from tests.engine.tiny_sd import TinySd, build_tiny_sd, write_diffusers_folder


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
