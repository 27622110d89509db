"""Parity with the official implementation: the full-size UNet's eps (fixture B).

Full size (1.2 B parameters, fp32 on CPU): the recipe weights go through the same converter as the
official checkpoint, so this also proves the key conversion end to end.
"""

import pytest
import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.models.builder import scaleu_of
from engine.models.fusers import set_fusers_enabled
from engine.models.unifusion import GroundingDrops
from tests.engine.parity import assert_close, dense_segs, drops_from_metadata, read_fixture

pytestmark = pytest.mark.slow


def test_parity_unet_eps_match_official(recipe_unet: UNet2DConditionModel) -> None:
    fixture, metadata = read_fixture("fixture_B_unet.safetensors")
    batch = fixture["x"].shape[0]
    grounding = {
        "boxes": fixture["boxes"],
        "masks": fixture["masks"],
        "positive_embeddings": fixture["positive_embeddings"],
        "scribbles": fixture["scribbles"],
        "polygons": fixture["polygons"],
        "segs": dense_segs(fixture, batch, slots=fixture["masks"].shape[1]),
        "points": fixture["points"],
    }

    def eps(*, grounded: bool, scaleu: bool = True, drops: GroundingDrops | None = None) -> torch.Tensor:
        set_fusers_enabled(recipe_unet, grounded)
        scaleu_of(recipe_unet).enabled = scaleu
        kwargs = {"gligen": {**grounding, "drops": drops}} if grounded else None
        with torch.no_grad():
            out: torch.Tensor = recipe_unet(
                fixture["x"],
                fixture["timesteps"],
                encoder_hidden_states=fixture["context"],
                cross_attention_kwargs=kwargs,
            ).sample
        return out

    checked = []
    if "eps_scale0_noscaleu" in fixture:  # optional debug output: the plain SD1.5 UNet
        assert_close(
            eps(grounded=False, scaleu=False), fixture["eps_scale0_noscaleu"], 1e-4, 2e-5, "eps_scale0_noscaleu"
        )
        checked.append("eps_scale0_noscaleu")
    assert_close(eps(grounded=False), fixture["eps_scale0"], 1e-4, 2e-5, "eps_scale0")
    checked.append("eps_scale0")
    configs = sorted(k.removeprefix("eps_test_").removesuffix("_scale1") for k in fixture if k.endswith("_scale1"))
    assert configs, "fixture B holds no eps_test_*_scale1 outputs"
    for config in configs:
        drops = drops_from_metadata(metadata, config)
        assert_close(
            eps(grounded=True, drops=drops),
            fixture[f"eps_test_{config}_scale1"],
            1e-4,
            2e-5,
            f"eps_test_{config}_scale1",
        )
        checked.append(config)
    assert len(checked) >= 2
