"""A single LDM-layout file goes through diffusers' own single-file loading, offline, with given configs
(issue 17): the same tensors as diffusers' `from_single_file` on the file, and as the diffusers folder of
the same model; what the file lacks or holds in the wrong shape is a clear error naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextModel

from engine.checkpoint import CheckpointMismatchError, adapter_part
from engine.loading import LoadedModels, load_components
from engine.sd15_source import resolve_sd15
from engine.weights_io import WeightFileError, write_safetensors_atomic
from tests.engine.tiny_sd import TINY_CONFIG, TinySd, ldm_single_file_state


def _load(file: Path, configs: Path) -> LoadedModels:
    return load_components(resolve_sd15(file, configs_dir=configs), unet_config=TINY_CONFIG)


def _assert_same(ours: torch.nn.Module, theirs: torch.nn.Module, skip: Any = lambda _key: False) -> None:
    mine = {k: v for k, v in ours.state_dict().items() if not skip(k)}
    other = theirs.state_dict()
    assert set(mine) == set(other)
    for key, value in other.items():
        assert torch.equal(mine[key], value), key


def test_a_single_file_loads_as_diffusers_loads_it(
    single_files: dict[str, Path], sd_folder: Path, no_network: list[Any]
) -> None:
    """diffusers' from_single_file on the file itself (config: the tiny folder, local only) gives our tensors."""
    file = single_files["safetensors"]
    ours = _load(file, sd_folder)
    kwargs: dict[str, Any] = {"config": str(sd_folder), "local_files_only": True}
    unet = UNet2DConditionModel.from_single_file(str(file), subfolder="unet", **kwargs)
    vae = AutoencoderKL.from_single_file(str(file), subfolder="vae", **kwargs)
    from safetensors.torch import load_file

    clip = create_diffusers_clip_model_from_ldm(  # type: ignore[no-untyped-call]
        CLIPTextModel, load_file(file), subfolder="text_encoder", **kwargs
    )
    _assert_same(ours.unet, unet, skip=adapter_part)
    _assert_same(ours.vae, vae)
    _assert_same(ours.text_encoder, clip)


def test_the_single_file_and_the_folder_render_the_same(
    single_files: dict[str, Path], sd_folder: Path, tiny: TinySd
) -> None:
    single = _load(single_files["ckpt"], sd_folder)
    folder = load_components(sd_folder, unet_config=TINY_CONFIG)
    for a, b in ((single.vae, folder.vae), (single.text_encoder, folder.text_encoder)):
        _assert_same(a, b)
    base = {k: v for k, v in folder.unet.state_dict().items() if not adapter_part(k)}  # the rest is random
    assert all(torch.equal(single.unet.state_dict()[k], v) for k, v in base.items())
    ids = single.tokenizer("a corgi", return_tensors="pt").input_ids
    assert torch.equal(single.text_encoder(ids)[0], tiny.text_encoder(ids)[0])


def test_a_stored_position_ids_buffer_is_ignored(tiny: TinySd, sd_folder: Path, tmp_path: Path) -> None:
    """Files saved with older transformers store CLIP's position_ids; current CLIP derives it."""
    state = ldm_single_file_state(tiny)
    state["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77)[None]
    write_safetensors_atomic(state, tmp_path / "old.safetensors")
    _assert_same(_load(tmp_path / "old.safetensors", sd_folder).text_encoder, tiny.text_encoder)


@pytest.mark.parametrize(
    ("dropped", "what"),
    [
        ("first_stage_model.decoder.conv_out.weight", "VAE"),
        ("first_stage_model.encoder.conv_in.bias", "VAE"),
        ("cond_stage_model.transformer.text_model.final_layer_norm.weight", "text encoder"),
        ("cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc2.bias", "text encoder"),
    ],
)
def test_a_tensor_missing_from_the_file_is_named(
    tiny: TinySd, sd_folder: Path, tmp_path: Path, dropped: str, what: str
) -> None:
    state = ldm_single_file_state(tiny)
    del state[dropped]
    write_safetensors_atomic(state, tmp_path / "holey.safetensors")
    with pytest.raises(WeightFileError, match=rf"holey\.safetensors: .*{what}") as caught:
        _load(tmp_path / "holey.safetensors", sd_folder)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_a_vae_of_another_size_is_a_mismatch_naming_the_tensor(
    single_files: dict[str, Path], sd_folder: Path, tmp_path: Path
) -> None:
    configs = Path(shutil.copytree(sd_folder, tmp_path / "configs"))
    config_file = configs / "vae" / "config.json"
    config = json.loads(config_file.read_text())
    config["latent_channels"] = 8
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointMismatchError, match=r"v1-5-tiny\.safetensors: the VAE's \S+ has shape") as caught:
        _load(single_files["safetensors"], configs)
    assert "\n" not in str(caught.value) and "https://" not in str(caught.value)


def test_vae_and_text_encoder_come_from_diffusers_single_file_loading(
    single_files: dict[str, Path], sd_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.single_file

    calls: list[tuple[str, dict[str, Any]]] = []
    vae_loader = AutoencoderKL.from_single_file.__func__
    clip_loader = create_diffusers_clip_model_from_ldm

    def vae_spy(cls: type[AutoencoderKL], *args: Any, **kwargs: Any) -> Any:
        calls.append(("vae", kwargs))
        return vae_loader(cls, *args, **kwargs)

    def clip_spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(("clip", kwargs))
        return clip_loader(*args, **kwargs)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(AutoencoderKL, "from_single_file", classmethod(vae_spy))
    monkeypatch.setattr(engine.single_file, "create_diffusers_clip_model_from_ldm", clip_spy)
    _load(single_files["safetensors"], sd_folder)
    assert [name for name, _ in calls] == ["vae", "clip"]
    assert all(kw["local_files_only"] is True and kw["config"] == str(sd_folder) for _, kw in calls)
