import pytest
import torch

from engine.models.fourier import fourier_embed
from engine.models.unifusion import OFFICIAL_DROPS, GroundingDrops, UniFusion, UniFusionConfig
from tests.engine.tiny_sd import TINY_POSITION_NET

N = 30
GROUPS = {"box": slice(0, 30), "point": slice(30, 60), "scribble": slice(60, 90), "polygon": slice(90, 120)}
GROUPS["seg"] = slice(120, 184)


@pytest.fixture(scope="module")
def net() -> UniFusion:
    torch.manual_seed(0)
    module = UniFusion(TINY_POSITION_NET).eval()
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.startswith("null_"):
                param.normal_()
    return module


def grounding(instances: int = 3, batch: int = 1) -> dict[str, torch.Tensor]:
    """Every location kind for `instances` slots, zeros in the rest."""
    generator = torch.Generator().manual_seed(7)
    masks = torch.zeros(batch, N)
    masks[:, :instances] = 1
    slot = masks.unsqueeze(-1)
    segs = torch.zeros(batch, N, 64, 64)
    segs[:, 0, 10:30, 20:50] = 1
    return {
        "boxes": slot * torch.tensor([0.1, 0.2, 0.5, 0.7]),
        "masks": masks,
        "positive_embeddings": slot * torch.randn(batch, N, 32, generator=generator),
        "scribbles": slot * torch.rand(batch, N, 40, generator=generator),
        "polygons": slot * torch.rand(batch, N, 512, generator=generator),
        "segs": segs,
        "points": slot * torch.tensor([0.3, 0.45]),
    }


def tokens(net: UniFusion, inputs: dict[str, torch.Tensor], drops: GroundingDrops | None = None) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = net(**inputs, drops=drops or OFFICIAL_DROPS["scribble"])  # default: nothing dropped
    return out


def changed_groups(a: torch.Tensor, b: torch.Tensor) -> set[str]:
    return {name for name, part in GROUPS.items() if not torch.allclose(a[:, part], b[:, part])}


def test_token_layout_at_tiny_and_official_size() -> None:
    assert TINY_POSITION_NET.num_tokens == 184
    assert UniFusionConfig().seg_feature_dim == 3072 and UniFusionConfig().num_tokens == 184


@pytest.mark.parametrize(
    ("name", "edit", "group"),
    [
        ("box", lambda g: g["boxes"].add_(0.05), "box"),
        ("point", lambda g: g["points"].add_(0.1), "point"),
        ("scribble", lambda g: g["scribbles"].mul_(0.5), "scribble"),
        ("polygon", lambda g: g["polygons"].mul_(0.5), "polygon"),
        ("mask", lambda g: g["segs"][:, 0, 40:60, 5:25].fill_(1), "seg"),
    ],
)
def test_each_location_kind_moves_only_its_own_tokens(net: UniFusion, name: str, edit: object, group: str) -> None:
    inputs = grounding()
    before = tokens(net, inputs)
    edit(inputs)  # type: ignore[operator]
    assert changed_groups(before, tokens(net, inputs)) == {group}, name


def test_the_caption_reaches_every_group_but_the_seg_tokens(net: UniFusion) -> None:
    inputs = grounding()
    before = tokens(net, inputs)
    inputs["positive_embeddings"][:, 1] += 1.0
    assert changed_groups(before, tokens(net, inputs)) == {"box", "point", "scribble", "polygon"}


def test_empty_slots_ignore_boxes_points_and_captions_and_use_null_features(net: UniFusion) -> None:
    inputs = grounding(instances=2)
    before = tokens(net, inputs)
    for key in ("boxes", "points", "positive_embeddings"):
        inputs[key][:, 5] = 0.77  # garbage in an empty slot
    after = tokens(net, inputs)
    torch.testing.assert_close(after, before)
    torch.testing.assert_close(after[0, 10], after[0, 20])  # every empty slot gets the same null token


def test_scribble_and_polygon_gates_follow_the_values_as_officially(net: UniFusion) -> None:
    """The official gate is 1[sum(values) + present > 0]: callers must leave empty slots at zero."""
    inputs = grounding(instances=2)
    before = tokens(net, inputs)
    inputs["scribbles"][:, 5] = 0.5
    inputs["polygons"][:, 6] = 0.5
    assert changed_groups(before, tokens(net, inputs)) == {"scribble", "polygon"}


def test_a_present_instance_without_a_scribble_embeds_zeros_not_the_null(net: UniFusion) -> None:
    inputs = grounding(instances=2)
    inputs["scribbles"][:, 1] = 0
    out = tokens(net, inputs)
    assert not torch.allclose(out[0, 60 + 1], out[0, 60 + 5]), "slot 1 is present, slot 5 is empty"


@pytest.mark.parametrize(
    ("config", "ignored"),
    [
        ("box", {"scribbles", "polygons", "segs"}),
        ("point", {"boxes", "scribbles", "polygons", "segs"}),
        ("mask", {"scribbles"}),
    ],
)
def test_dropped_kinds_have_no_effect(net: UniFusion, config: str, ignored: set[str]) -> None:
    drops = OFFICIAL_DROPS[config]
    inputs = grounding()
    before = tokens(net, inputs, drops)
    for key in ignored:
        inputs[key] = inputs[key] * 0.5 + 0.25 * inputs["masks"].view(1, N, *([1] * (inputs[key].ndim - 2)))
    torch.testing.assert_close(tokens(net, inputs, drops), before)


def test_dropping_everything_keeps_the_boxes(net: UniFusion) -> None:
    everything = GroundingDrops(boxes=True, points=True, scribbles=True, masks=True)
    inputs = grounding()
    before = tokens(net, inputs, everything)
    inputs["boxes"] = inputs["boxes"] + 0.05 * inputs["masks"].unsqueeze(-1)
    assert changed_groups(before, tokens(net, inputs, everything)) == {"box"}


def test_the_seg_gate_is_per_sample(net: UniFusion) -> None:
    inputs = grounding(batch=2)
    inputs["segs"][1] = 0  # sample 1 has no mask at all
    out = tokens(net, inputs)
    lone = {k: v[1:] for k, v in inputs.items()}
    torch.testing.assert_close(out[1:, GROUPS["seg"]], tokens(net, lone)[:, GROUPS["seg"]])
    assert not torch.allclose(out[0, GROUPS["seg"]], out[1, GROUPS["seg"]])


def test_no_mask_skips_the_convnext(net: UniFusion, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = grounding()
    inputs["segs"].zero_()
    expected = tokens(net, inputs)

    def boom(*_args: object) -> None:
        raise AssertionError("the ConvNeXt ran although no slot has a mask")

    monkeypatch.setattr(net.convnext_tiny_backbone, "forward", boom)
    torch.testing.assert_close(tokens(net, inputs), expected)


def test_fourier_embedding_order_and_width() -> None:
    v = torch.tensor([[0.25, 0.5]])
    out = fourier_embed(v, num_freqs=16)
    assert out.shape == (1, 64)
    f1 = 100 ** (1 / 16)
    expected_start = [torch.sin(v[0, 0]), torch.sin(v[0, 1]), torch.cos(v[0, 0]), torch.cos(v[0, 1])]
    torch.testing.assert_close(out[0, :4], torch.stack(expected_start))
    torch.testing.assert_close(out[0, 4], torch.sin(v[0, 0] * f1))
