"""The converter against every key and shape of the official checkpoint (instdiff_sd15_keys.json)."""

import json

import pytest
import torch

from engine.checkpoint import CheckpointMismatchError, adapter_part, check_fits, convert_official_unet
from engine.models.builder import InstanceUNetConfig, build_instance_unet
from tests.engine.parity import LDM_TO_DIFFUSERS_FILE, model_shapes


def meta_official_state() -> dict[str, torch.Tensor]:
    """A full-size official UNet state dict of shape-only tensors: every name, no memory."""
    return {k: torch.empty(shape, device="meta") for k, shape in model_shapes().items()}


def test_every_official_key_and_shape_converts_onto_our_model() -> None:
    config = InstanceUNetConfig()
    state = meta_official_state()
    assert len(state) == 1199
    converted = convert_official_unet(state, config.unet_kwargs(), "official.pth")
    unet = build_instance_unet(config, device="meta")
    check_fits(unet, converted, "official.pth")  # nothing missing, unexpected or misshapen
    assert len(converted) == len(unet.state_dict()) == 1199


def test_names_agree_with_the_reference_ldm_to_diffusers_map() -> None:
    reference: dict[str, str] = json.loads(LDM_TO_DIFFUSERS_FILE.read_text())
    state = meta_official_state()
    converted = convert_official_unet(state, InstanceUNetConfig().unet_kwargs(), "official.pth")
    ours = {}
    for diffusers_name, tensor in converted.items():
        (ldm_name,) = (k for k, v in state.items() if v is tensor)
        ours[ldm_name] = diffusers_name
    expected = {k: (f"scaleu.{v}" if v.startswith("scaleu_") else v) for k, v in reference.items()}
    assert ours == expected


def test_adapter_parts_are_the_fusers_position_net_and_scaleu() -> None:
    converted = convert_official_unet(meta_official_state(), InstanceUNetConfig().unet_kwargs(), "official.pth")
    parts = [k for k in converted if adapter_part(k)]
    assert len(parts) == 272 + 217 + 24
    assert sum(converted[k].numel() for k in parts) == 208_018_272 + 160_782_669 + 11_532


def test_keys_the_ldm_map_drops_are_listed_as_unexpected() -> None:
    state = meta_official_state()
    state["mystery_block.weight"] = torch.empty(3, device="meta")
    with pytest.raises(CheckpointMismatchError, match=r"official\.pth: 1 unexpected keys: mystery_block\.weight"):
        convert_official_unet(state, InstanceUNetConfig().unet_kwargs(), "official.pth")


def test_unknown_keys_inside_a_block_are_listed_when_checked() -> None:
    config = InstanceUNetConfig()
    state = meta_official_state()
    state["input_blocks.1.1.transformer_blocks.0.fuser.surprise"] = torch.empty(3, device="meta")
    converted = convert_official_unet(state, config.unet_kwargs(), "official.pth")
    with pytest.raises(
        CheckpointMismatchError, match=r"1 unexpected keys: down_blocks\.0\.attentions\.0\..*fuser\.surprise"
    ):
        check_fits(build_instance_unet(config, device="meta"), converted, "official.pth")


def test_missing_and_misshapen_keys_are_listed() -> None:
    config = InstanceUNetConfig()
    state = meta_official_state()
    del state["position_net.null_seg_feature"]
    state["scaleu_b_3"] = torch.empty(640, device="meta")
    converted = convert_official_unet(state, config.unet_kwargs(), "official.pth")
    unet = build_instance_unet(config, device="meta")
    with pytest.raises(CheckpointMismatchError) as info:
        check_fits(unet, converted, "official.pth")
    message = str(info.value)
    assert "1 missing keys: position_net.null_seg_feature" in message
    assert "1 wrong shapes: scaleu.scaleu_b_3 (640,) != (1280,)" in message
