import csv
import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.demo.training import DEMO_VAE, VaeTrainingConfig, train_vae, world_batch
from engine.weights_io import read_safetensors

TINY = VaeTrainingConfig(
    batch_size=4,
    steps=4,
    checkpoint_every=2,
    vae={**DEMO_VAE, "block_out_channels": (32, 32, 32)},
)


def test_a_batch_depends_only_on_the_seed_and_its_step() -> None:
    assert torch.equal(world_batch(TINY, 3), world_batch(TINY, 3))
    assert not torch.equal(world_batch(TINY, 3), world_batch(TINY, 4))
    batch = world_batch(TINY, 0)
    assert batch.shape == (4, 3, 64, 64) and batch.min() >= -1 and batch.max() <= 1


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    whole = train_vae(TINY, tmp_path / "whole", log=lambda _: None)
    train_vae(TINY, tmp_path / "split", log=lambda _: None, stop_after=2)  # "killed" after its step-2 checkpoint
    messages: list[str] = []
    resumed = train_vae(TINY, tmp_path / "split", log=messages.append)
    assert messages[0] == "resuming at step 2"
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    rows = list(csv.reader((tmp_path / "split" / "vae_loss.csv").open()))
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
    assert read_safetensors(tmp_path / "split" / "vae.safetensors").keys() == whole.state_dict().keys()
    with Image.open(tmp_path / "split" / "vae_loss.png") as curve:
        assert curve.size == (640, 360)


def test_the_config_file_round_trips(tmp_path: Path) -> None:
    TINY.save(tmp_path / "c.json")
    loaded = VaeTrainingConfig.load(tmp_path / "c.json")
    assert loaded.steps == TINY.steps and list(loaded.vae["block_out_channels"]) == [32, 32, 32]


def test_the_latent_scale_is_measured_and_kept_across_a_resume(tmp_path: Path) -> None:
    vae = train_vae(TINY, tmp_path / "run", log=lambda _: None, stop_after=2)
    measured = float(vae.config["scaling_factor"])
    assert measured != 0.18215 and measured > 0
    resumed = train_vae(dataclasses.replace(TINY, steps=2), tmp_path / "run", log=lambda _: None)
    assert float(resumed.config["scaling_factor"]) == measured


def test_preview_factors_map_latents_to_colours_better_than_nothing() -> None:
    from engine.demo.training import fit_preview_factors

    torch.manual_seed(0)
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL

    vae = AutoencoderKL(**TINY.vae)
    factors = torch.tensor(fit_preview_factors(vae, TINY, batches=2), dtype=torch.float32)
    assert factors.shape == (4, 3)
    images = world_batch(TINY, 123)
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean * float(vae.config["scaling_factor"])
    target = torch.nn.functional.adaptive_avg_pool2d(images, latents.shape[-2:]).permute(0, 2, 3, 1)
    preview = torch.einsum("bchw,cr->bhwr", latents, factors)
    assert ((preview - target) ** 2).mean() < (target**2).mean()


def test_the_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    from engine.demo.training import learning_rate_at

    rates = [learning_rate_at(step, 1e-3, warmup=10, steps=110) for step in range(110)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:])), "no increase after the warm-up"
    assert learning_rate_at(109, 1e-3, warmup=10, steps=110) == pytest.approx(1e-4, rel=0.01)


def test_gradients_are_clipped_to_the_configured_norm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(parameters: object, max_norm: float, *args: object, **kwargs: object) -> torch.Tensor:
        seen.append(max_norm)
        return real(parameters, max_norm, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train_vae(dataclasses.replace(TINY, max_grad_norm=0.5), tmp_path, log=lambda _: None, stop_after=2)
    assert seen == [0.5, 0.5]
