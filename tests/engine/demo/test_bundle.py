"""Bundling a training run into the shipped model folder, with a manifest that can be checked."""

import dataclasses
from pathlib import Path

import pytest
import torch

from benchmarks import placement
from engine.demo.bundle import BundleError, bundle_demo, read_manifest, verify_files
from engine.demo.model import DemoModelConfig, build_demo_components, load_demo
from engine.demo.training import VaeTrainingConfig, train_vae
from engine.demo.unet_training import UnetTrainingConfig, train_unet
from engine.providers import load_demo_model


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    vae = train_vae(VaeTrainingConfig(batch_size=2, steps=2, checkpoint_every=1), out, log=lambda _: None)
    components = build_demo_components(DemoModelConfig(), out / "tokenizer")
    train_unet(
        UnetTrainingConfig(batch_size=2, steps=2, checkpoint_every=1, scenes=4),
        components,
        vae,
        out,
        log=lambda _: None,
    )
    return out


def test_a_run_becomes_a_model_folder_with_a_checkable_manifest(run: Path, tmp_path: Path) -> None:
    dest = tmp_path / "model"
    manifest = bundle_demo(run, dest, ["python scripts/train_demo.py vae", "python scripts/train_demo.py unet"])
    assert set(manifest["files"]) >= {"config.json", "vae.safetensors", "unet.safetensors", "text_encoder.safetensors"}
    assert manifest["total_bytes"] < 30 * 2**20
    assert manifest["training"]["unet"]["steps_trained"] == 2 and manifest["training"]["vae"]["final_loss"] > 0
    assert manifest["training"]["commands"][0] == "python scripts/train_demo.py vae"
    assert read_manifest(dest) == manifest and verify_files(dest) == []

    components, config = load_demo(dest)
    scaling = float(components.vae.config["scaling_factor"])
    assert scaling != 0.18215 and config.preview_factors is not None  # the run's own, not diffusers' default
    loaded = load_demo_model(dest)
    assert set(loaded.hashes) == {"vae", "unet", "text_encoder"}

    with (dest / "unet.safetensors").open("r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    assert verify_files(dest) == ["unet.safetensors"]


def test_the_placement_benchmark_records_its_figures_in_the_manifest(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "model"
    bundle_demo(run, dest, [])
    assert (
        placement.main(
            [
                "--model",
                str(dest),
                "--layouts",
                "1",
                "--steps",
                "2",
                "--edits",
                "1",
                "--time-steps",
                "2",
                "--canvas-layouts",
                "1",
                "--record",
            ]
        )
        == 0
    )
    evaluation = read_manifest(dest)["evaluation"]
    assert evaluation["layouts"] == 1 and set(evaluation["mis_on"]) == {"box", "point", "scribble", "mask", "shape"}
    assert set(evaluation["canvases"]) == {"layouts", "target", "96x64", "64x96"}
    assert "render_seconds" in evaluation and "edit locality" in capsys.readouterr().out


def test_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"vae\.safetensors is missing"):
        bundle_demo(tmp_path, tmp_path / "model", [])


def test_parts_left_unchanged_keep_their_training_record(run: Path, tmp_path: Path) -> None:
    """A rebundle whose VAE is byte-for-byte the previous one's (a UNet retrained on the shipped VAE, with no VAE
    log of its own) keeps the VAE's record; a text encoder taken from a model folder says where from."""
    dest = tmp_path / "model"
    bundle_demo(run, dest, ["first"])
    first = read_manifest(dest)
    (run / "vae_loss.csv").rename(run / "vae_loss.csv.away")
    frozen = run / "unet_training.json"
    original = frozen.read_text()
    try:
        config = UnetTrainingConfig.load(frozen)
        dataclasses.replace(config, text_encoder_from="resources/demo/model", train_text_encoder=False).save(frozen)
        second = bundle_demo(run, dest, ["second"])
    finally:
        (run / "vae_loss.csv.away").rename(run / "vae_loss.csv")
        frozen.write_text(original)
    assert second["training"]["vae"]["final_loss"] == first["training"]["vae"]["final_loss"] > 0
    assert second["training"]["vae"]["unchanged_from_previous"] is True
    assert second["training"]["text_encoder"]["from"] == "resources/demo/model"
    assert second["training"]["text_encoder"]["frozen"] is True
