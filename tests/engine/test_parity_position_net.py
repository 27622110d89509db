"""Parity with the official implementation: the recipe weights and UniFusion's tokens (fixture A)."""

import pytest
import torch
from safetensors.torch import load_file

from engine.models.unifusion import OFFICIAL_DROPS, GroundingDrops, UniFusion, UniFusionConfig
from tests.engine.parity import (
    assert_close,
    dense_segs,
    drops_from_metadata,
    model_shapes,
    parity_dir,
    read_fixture,
    recipe_tensor,
)


def test_parity_recipe_regenerates_every_checked_tensor() -> None:
    check = load_file(parity_dir() / "recipe_check.safetensors")
    shapes = model_shapes()
    names = {key.split("/", 1)[1] for key in check if key.startswith("head/")}
    assert names == set(shapes), "the recipe covers exactly the official UNet state dict"
    for name, shape in shapes.items():
        tensor = recipe_tensor(name, shape)
        head = check[f"head/{name}"]
        assert torch.equal(tensor.flatten()[: head.numel()], head), name
        assert tensor.double().sum().item() == pytest.approx(check[f"sum/{name}"].item(), rel=1e-6, abs=1e-6), name


def test_official_drop_flags_are_the_spec_table() -> None:
    assert OFFICIAL_DROPS["box"] == GroundingDrops(boxes=False, points=False, scribbles=True, masks=True)
    assert OFFICIAL_DROPS["mask"] == GroundingDrops(boxes=False, points=False, scribbles=True, masks=False)
    assert OFFICIAL_DROPS["point"] == GroundingDrops(boxes=True, points=False, scribbles=True, masks=True)
    assert OFFICIAL_DROPS["scribble"] == GroundingDrops(boxes=False, points=False, scribbles=False, masks=False)
    assert GroundingDrops.for_config("test_point") is OFFICIAL_DROPS["point"]
    with pytest.raises(ValueError, match="unknown grounding config 'blob'"):
        GroundingDrops.for_config("blob")


def recipe_position_net() -> UniFusion:
    net = UniFusion(UniFusionConfig())
    prefix = "position_net."
    weights = {k[len(prefix) :]: recipe_tensor(k, s) for k, s in model_shapes(["model.position_net"]).items()}
    net.load_state_dict(weights, strict=True)
    return net.eval()


def test_parity_position_net_tokens_match_official_for_every_config() -> None:
    fixture, metadata = read_fixture("fixture_A_position_net.safetensors")
    configs = sorted(key.removeprefix("tokens_test_") for key in fixture if key.startswith("tokens_test_"))
    assert configs, "fixture A holds no tokens_test_* outputs"
    net = recipe_position_net()
    batch = fixture["boxes"].shape[0]
    segs = dense_segs(fixture, batch, slots=fixture["masks"].shape[1])
    for config in configs:
        drops = drops_from_metadata(metadata, config)
        with torch.no_grad():
            tokens = net(
                boxes=fixture["boxes"],
                masks=fixture["masks"],
                positive_embeddings=fixture["positive_embeddings"],
                scribbles=fixture["scribbles"],
                polygons=fixture["polygons"],
                segs=segs,
                points=fixture["points"],
                drops=drops,
            )
        assert_close(tokens, fixture[f"tokens_test_{config}"], max_abs=1e-5, rel_l2=1e-5, what=f"tokens_test_{config}")
