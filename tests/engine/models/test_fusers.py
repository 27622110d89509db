import dataclasses

import pytest
import torch
from diffusers.models.attention import GatedSelfAttentionDense

from engine.models.builder import build_instance_unet, position_net_of
from engine.models.fusers import FuserConfig, InstanceFuser, RegionTokens, fuser_config_of, fusers, token_visibility
from tests.engine.models.test_unifusion import grounding
from tests.engine.tiny_sd import TINY_CONFIG

SLOTS, SEG_TOKENS, WIDTH = 3, 5, 16
TOKENS = 4 * SLOTS + SEG_TOKENS


def fuser_pair(masked: bool) -> tuple[GatedSelfAttentionDense, InstanceFuser]:
    """diffusers' fuser and ours with the same (random, gates open) weights."""
    torch.manual_seed(0)
    stock = GatedSelfAttentionDense(query_dim=WIDTH, context_dim=8, n_heads=2, d_head=WIDTH // 2)
    with torch.no_grad():
        stock.alpha_attn.fill_(0.7)
        stock.alpha_dense.fill_(0.4)
    ours = InstanceFuser(query_dim=WIDTH, context_dim=8, n_heads=2, d_head=WIDTH // 2)
    ours.load_state_dict(stock.state_dict())
    ours.masked = masked
    return stock, ours


def inputs(side: int = 4, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, side * side, WIDTH, generator=generator), torch.randn(
        batch, TOKENS, 8, generator=generator
    )


def test_unmasked_it_computes_exactly_what_diffusers_fuser_does() -> None:
    stock, ours = fuser_pair(masked=False)
    x, objs = inputs()
    with torch.no_grad():
        expected = stock(x, objs)
        assert torch.equal(ours(x, objs), expected)
        # Regions given to an unmasked model change nothing.
        assert torch.equal(ours(x, RegionTokens(objs, torch.zeros(2, SLOTS, 4, 4))), expected)


def test_masked_with_every_slot_visible_everywhere_equals_unmasked() -> None:
    stock, ours = fuser_pair(masked=True)
    x, objs = inputs()
    with torch.no_grad():
        torch.testing.assert_close(ours(x, RegionTokens(objs, torch.ones(2, SLOTS, 4, 4))), stock(x, objs))


def test_a_visual_token_sees_only_the_slots_whose_region_covers_it() -> None:
    _, ours = fuser_pair(masked=True)
    x, objs = inputs()
    regions = torch.zeros(2, SLOTS, 4, 4)
    regions[:, 0, :2, :2] = 1  # slot 0: the top-left quarter
    changed = objs.clone()
    changed[:, [0, SLOTS, 2 * SLOTS, 3 * SLOTS]] += 3.0  # all four of slot 0's tokens
    with torch.no_grad():
        before = ours(x, RegionTokens(objs, regions)).view(2, 4, 4, WIDTH)
        after = ours(x, RegionTokens(changed, regions)).view(2, 4, 4, WIDTH)
    moved = (after - before).abs().amax(dim=(0, 3)) > 1e-6
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:2, :2] = True
    assert torch.equal(moved, expected)


def test_the_seg_tokens_are_seen_everywhere_even_with_no_instance() -> None:
    _, ours = fuser_pair(masked=True)
    x, objs = inputs()
    changed = objs.clone()
    changed[:, -1] += 3.0
    empty = torch.zeros(2, SLOTS, 4, 4)
    with torch.no_grad():
        difference = ours(x, RegionTokens(changed, empty)) - ours(x, RegionTokens(objs, empty))
    assert (difference.abs().amax(dim=2) > 1e-6).all()


def test_a_masked_fuser_refuses_tokens_without_regions_but_is_still_switchable() -> None:
    _, ours = fuser_pair(masked=True)
    x, objs = inputs()
    with pytest.raises(ValueError, match="pass RegionTokens"):
        ours(x, objs)
    ours.enabled = False
    assert ours(x, RegionTokens(objs, torch.ones(2, SLOTS, 4, 4))) is x


@pytest.mark.parametrize(
    ("grid", "levels"),
    [((16, 16), [(16, 16), (8, 8), (4, 4)]), ((24, 16), [(24, 16), (12, 8), (6, 4)]), ((6, 10), [(3, 5), (2, 3)])],
)
def test_regions_follow_each_level_of_the_unet(grid: tuple[int, int], levels: list[tuple[int, int]]) -> None:
    regions = torch.zeros(1, SLOTS, *grid)
    regions[0, 1, -1, -1] = 1  # one cell in the bottom-right corner
    for h, w in levels:
        visible = token_visibility(regions, h * w, TOKENS)
        assert visible.shape == (1, h * w, TOKENS)
        slot_1 = visible[0, :, [1, SLOTS + 1, 2 * SLOTS + 1, 3 * SLOTS + 1]]
        assert slot_1.all(dim=1).nonzero().flatten().tolist() == [h * w - 1]
        assert not visible[0, :, 0].any() and visible[0, :, 4 * SLOTS :].all()


def test_regions_that_fit_no_level_are_refused() -> None:
    with pytest.raises(ValueError, match="do not match"):
        token_visibility(torch.zeros(1, SLOTS, 16, 16), 60, TOKENS)


def test_the_builder_sets_up_fusers_from_the_config() -> None:
    default = build_instance_unet(TINY_CONFIG)
    assert fuser_config_of(default) == FuserConfig()
    assert all(isinstance(f, InstanceFuser) and not f.masked and f.alpha_attn.item() == 0 for f in fusers(default))
    config = dataclasses.replace(TINY_CONFIG, fusers=FuserConfig(masked_attention=True, gate_init=1.0))
    masked = build_instance_unet(config)
    assert fuser_config_of(masked).masked_attention
    assert all(isinstance(f, InstanceFuser) and f.masked and f.alpha_dense.item() == 1 for f in fusers(masked))
    assert masked.state_dict().keys() == default.state_dict().keys()  # the official checkpoint still loads


def test_unmasked_the_whole_unet_ignores_regions_bit_for_bit() -> None:
    torch.manual_seed(0)
    unet = build_instance_unet(TINY_CONFIG).eval()
    with torch.no_grad():
        for f in fusers(unet):
            f.alpha_attn.fill_(0.5)
        tokens = position_net_of(unet)(**grounding())
        generator = torch.Generator().manual_seed(2)
        x, context = torch.randn(1, 4, 16, 16, generator=generator), torch.randn(1, 77, 32, generator=generator)

        def run(objs: object) -> torch.Tensor:
            kwargs = {"gligen": {"objs": objs}}
            out: torch.Tensor = unet(
                x, torch.tensor([500]), encoder_hidden_states=context, cross_attention_kwargs=kwargs
            )
            return out.sample  # type: ignore[attr-defined]

        assert torch.equal(run(tokens), run(RegionTokens(tokens, torch.zeros(1, 30, 16, 16))))
