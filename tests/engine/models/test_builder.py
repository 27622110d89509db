import time

import pytest
import torch

from engine.models.builder import InstanceUNetConfig, build_instance_unet, position_net_of, scaleu_of
from engine.models.fusers import fusers, set_fusers_enabled
from engine.models.unifusion import GroundingDrops, UniFusion
from tests.engine.models.test_unifusion import grounding
from tests.engine.tiny_sd import TINY_CONFIG, tiny_unet


def test_sd15_size_build_matches_the_official_model() -> None:
    unet = build_instance_unet(InstanceUNetConfig(), device="meta")
    state = unet.state_dict()
    assert len(state) == 1199
    assert sum(t.numel() for t in state.values()) == 1_228_333_437
    assert len(fusers(unet)) == 16


def test_tiny_build_is_fast_and_complete() -> None:
    start = time.perf_counter()
    unet = build_instance_unet(TINY_CONFIG)
    assert time.perf_counter() - start < 1.0
    assert isinstance(position_net_of(unet), UniFusion)
    assert len(scaleu_of(unet).channels) == 12
    assert len(fusers(unet)) == 16


def test_a_plain_diffusers_unet_is_not_mistaken_for_ours() -> None:
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

    plain = UNet2DConditionModel(**TINY_CONFIG.unet_kwargs())
    with pytest.raises(TypeError, match="not built by build_instance_unet"):
        scaleu_of(plain)
    with pytest.raises(TypeError, match="position net is not UniFusion"):
        position_net_of(plain)


@pytest.fixture(scope="module")
def unet() -> torch.nn.Module:
    return tiny_unet()


def eps(unet: torch.nn.Module, gligen: dict[str, torch.Tensor] | None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 16, 16, generator=generator)
    context = torch.randn(1, 77, 32, generator=generator)
    kwargs = {"gligen": gligen} if gligen is not None else None
    with torch.no_grad():
        out: torch.Tensor = unet(
            x, torch.tensor([700]), encoder_hidden_states=context, cross_attention_kwargs=kwargs
        ).sample
    return out


@pytest.mark.parametrize("kind", ["boxes", "points", "scribbles", "polygons", "segs"])
def test_every_location_kind_reaches_the_unet_output(unet: torch.nn.Module, kind: str) -> None:
    inputs = {**grounding(), "drops": GroundingDrops(scribbles=False)}  # nothing dropped
    before = eps(unet, inputs)
    edited = dict(inputs)
    edited[kind] = inputs[kind].roll(7, dims=-1) if kind != "segs" else inputs[kind].roll(17, dims=-1)
    assert not torch.allclose(eps(unet, edited), before, atol=1e-6), f"moving the {kind} changed nothing"


def test_fusers_off_is_grounding_off(unet: torch.nn.Module) -> None:
    inputs = grounding()
    ungrounded = eps(unet, None)
    assert not torch.allclose(eps(unet, inputs), ungrounded, atol=1e-6)
    set_fusers_enabled(unet, False)
    try:
        torch.testing.assert_close(eps(unet, inputs), ungrounded)
    finally:
        set_fusers_enabled(unet, True)
