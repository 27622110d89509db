import dataclasses
from pathlib import Path

import pytest
import torch
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from engine.demo.model import DemoComponents, DemoModelConfig, build_demo_components
from engine.demo.unet_training import (
    KIND_CYCLE,
    SceneSet,
    UnetTrainingConfig,
    batch_loss,
    build_scene_set,
    grounding_inputs,
    min_snr_weights,
    scene_seeds,
    train_unet,
    training_batch,
)
from engine.demo.world import generate, instance_captions
from engine.models.builder import position_net_of
from engine.models.fusers import fuser_config_of
from engine.models.unifusion import GroundingDrops
from engine.regions import slot_regions
from engine.request import InstanceKind
from engine.schedulers import SD15_SCHEDULE

TINY = UnetTrainingConfig(batch_size=4, steps=4, checkpoint_every=2, scenes=8, min_snr_gamma=5.0)


def components(folder: Path) -> DemoComponents:
    torch.manual_seed(0)
    return build_demo_components(DemoModelConfig(), folder)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> DemoComponents:
    return components(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def scenes(parts: DemoComponents) -> SceneSet:
    return build_scene_set(TINY, parts, parts.vae)


def test_the_scene_set_holds_every_kinds_inputs_and_regions(parts: DemoComponents, scenes: SceneSet) -> None:
    assert len(scenes) == 8 and scenes.latent_mean.shape == (8, 4, 16, 16)
    assert (scenes.latent_std > 0).all()
    vocabulary = instance_captions()
    for row in range(len(scenes)):
        count = int((scenes.caption_ids[row] >= 0).sum())
        captions = [vocabulary[i] for i in scenes.caption_ids[row, :count].tolist()]
        assert all(caption in scenes.prompts[row] for caption in captions)
    # Regions are exactly what the pipeline computes from the same specs.
    scene = generate(scene_seeds(TINY)[0], min_instances=TINY.min_instances)
    assert scene.caption == scenes.prompts[0]
    for kind in InstanceKind:
        expected = slot_regions(scene.specs(kind), 6, 16, 16, fuser_config_of(parts.unet))[0] > 0
        assert torch.equal(scenes.regions[kind][0], expected), kind


def test_the_scene_set_survives_a_save_and_load(scenes: SceneSet, tmp_path: Path) -> None:
    scenes.save(tmp_path / "scenes.pt")
    again = SceneSet.load(tmp_path / "scenes.pt")
    assert again.prompts == scenes.prompts and torch.equal(again.segs, scenes.segs)
    for kind in InstanceKind:
        assert torch.equal(again.regions[kind], scenes.regions[kind])
        for key, value in scenes.locations[kind].items():
            assert torch.equal(again.locations[kind][key], value)


def test_batches_are_reproducible_and_cycle_through_every_location_kind(scenes: SceneSet) -> None:
    first, again = training_batch(TINY, 5, scenes), training_batch(TINY, 5, scenes)
    assert torch.equal(first.indices, again.indices) and first.prompts == again.prompts
    assert torch.equal(first.grounded, again.grounded)
    assert [training_batch(TINY, step, scenes).kind for step in range(4)] == list(KIND_CYCLE)


def test_some_samples_lose_their_grounding_or_caption(parts: DemoComponents, scenes: SceneSet) -> None:
    config = dataclasses.replace(TINY, batch_size=32, null_grounding=0.5, empty_caption=0.5)
    batch = dataclasses.replace(training_batch(config, 3, scenes), kind=InstanceKind.MASK)
    pooled = torch.randn(len(instance_captions()), 64)
    inputs, regions = grounding_inputs(batch, scenes, pooled, max_objs=30)
    present = inputs["masks"].sum(dim=1)
    assert ((present == 0) == ~batch.grounded).all() and (present > 0).any()
    assert regions.shape == (32, 30, 16, 16)
    assert regions[~batch.grounded].sum() == 0 and regions[batch.grounded].sum() > 0
    assert (
        inputs["segs"][~batch.grounded].sum() == 0 and inputs["positive_embeddings"][~batch.grounded].abs().sum() == 0
    )
    assert "" in batch.prompts and any(batch.prompts)
    # The net takes them as they are.
    assert position_net_of(parts.unet)(**inputs, drops=GroundingDrops()).shape[:2] == (32, 184)


def test_min_snr_weights_cap_the_easy_timesteps_only() -> None:
    scheduler = DDPMScheduler(**SD15_SCHEDULE)
    timesteps = torch.tensor([0, 100, 500, 999])
    assert torch.equal(min_snr_weights(scheduler, timesteps, 0.0), torch.ones(4))
    weights = min_snr_weights(scheduler, timesteps, 5.0)
    assert weights[0] < weights[1] < 1 and weights[2] == 1 and weights[3] == 1


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path: Path) -> None:
    vae = components(tmp_path / "v").vae
    whole = train_unet(TINY, components(tmp_path / "a"), vae, tmp_path / "whole", log=lambda _: None)
    messages: list[str] = []
    train_unet(TINY, components(tmp_path / "b"), vae, tmp_path / "split", log=messages.append, stop_after=2)
    assert messages[0].startswith("training set: 8 scenes")
    messages.clear()
    resumed = train_unet(TINY, components(tmp_path / "c"), vae, tmp_path / "split", log=messages.append)
    assert messages[0] == "resuming at step 2"  # and the scene set came from the run's cache
    for name, tensor in whole.unet.state_dict().items():
        torch.testing.assert_close(resumed.unet.state_dict()[name], tensor, rtol=0, atol=1e-6, msg=name)
    assert len((tmp_path / "whole" / "unet_loss.csv").read_text().splitlines()) == 4


def test_training_lowers_the_loss_on_a_fixed_batch(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, steps=6, warmup_steps=1, learning_rate=1e-3)
    parts, vae = components(tmp_path / "tok"), components(tmp_path / "v").vae
    scenes = build_scene_set(config, parts, vae)
    scheduler = DDPMScheduler(**SD15_SCHEDULE)
    probe = [(step, training_batch(config, step, scenes)) for step in range(100, 104)]

    def probe_loss() -> float:
        with torch.no_grad():
            losses = [batch_loss(config, s, b, scenes, parts, scheduler, instance_captions()) for s, b in probe]
        return float(torch.stack(losses).mean())

    before = probe_loss()
    train_unet(config, parts, vae, tmp_path / "run", log=lambda _: None)
    assert probe_loss() < before


def test_a_frozen_text_encoder_is_left_untouched(tmp_path: Path) -> None:
    parts = components(tmp_path / "tok")
    before = {k: v.clone() for k, v in parts.text_encoder.state_dict().items()}
    config = dataclasses.replace(TINY, train_text_encoder=False, steps=2)
    train_unet(config, parts, components(tmp_path / "v").vae, tmp_path / "run", log=lambda _: None)
    for name, tensor in parts.text_encoder.state_dict().items():
        assert torch.equal(tensor, before[name]), name
