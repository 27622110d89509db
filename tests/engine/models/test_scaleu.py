import pytest
import torch

from engine.models.builder import SD15_UNET, build_instance_unet, scaleu_of
from engine.models.scaleu import ScaleU, backbone_channels
from tests.engine.tiny_sd import TINY_CONFIG


def test_backbone_channels_of_sd15_match_the_official_scaleu_sizes() -> None:
    assert backbone_channels(SD15_UNET) == [1280] * 7 + [640] * 3 + [320] * 2


def test_merge_scales_backbone_channels_and_the_skips_lowest_frequencies() -> None:
    scaleu = ScaleU([2])
    with torch.no_grad():
        scaleu.scaleu_b_0.copy_(torch.tensor([0.5, -1.0]))
        scaleu.scaleu_s_0.fill_(0.3)
    h = torch.ones(1, 2, 4, 4)
    flat_skip = torch.full((1, 1, 4, 4), 2.0)  # only the DC frequency
    checker = torch.tensor([[1.0, -1.0] * 2, [-1.0, 1.0] * 2] * 2).view(1, 1, 4, 4)  # only the highest frequency
    out = scaleu.merge(0, torch.cat([h, flat_skip], dim=1))
    torch.testing.assert_close(out[0, 0], torch.full((4, 4), float(torch.tanh(torch.tensor(0.5)) + 1)))
    torch.testing.assert_close(out[0, 1], torch.full((4, 4), float(torch.tanh(torch.tensor(-1.0)) + 1)))
    torch.testing.assert_close(out[0, 2], torch.full((4, 4), 2.0 * float(torch.tanh(torch.tensor(0.3)) + 1)))
    torch.testing.assert_close(scaleu.merge(0, torch.cat([h, checker], dim=1))[:, 2:], checker)


def sample(unet: torch.nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 4, 16, 16, generator=generator)
    context = torch.randn(1, 77, 32, generator=generator)
    with torch.no_grad():
        out: torch.Tensor = unet(x, torch.tensor([500]), encoder_hidden_states=context).sample
    return out


def test_zero_scaleu_is_the_identity_and_non_zero_changes_the_output() -> None:
    torch.manual_seed(0)
    unet = build_instance_unet(TINY_CONFIG).eval()
    scaleu = scaleu_of(unet)
    with_hooks = sample(unet)
    scaleu.detach()
    torch.testing.assert_close(sample(unet), with_hooks, rtol=0, atol=2e-6)
    scaleu.attach(unet)
    with torch.no_grad():
        scaleu.scaleu_b_5.fill_(0.4)
    assert not torch.allclose(sample(unet), with_hooks, atol=1e-4)
    scaleu.enabled = False
    torch.testing.assert_close(sample(unet), with_hooks, rtol=0, atol=2e-6)


def test_attach_refuses_a_unet_of_another_shape() -> None:
    unet = build_instance_unet(TINY_CONFIG)
    with pytest.raises(ValueError, match="ScaleU has 3 merges but the UNet has 12"):
        ScaleU([32, 32, 32]).attach(unet)
