from pathlib import Path

import torch

from engine.demo.model import DemoComponents, DemoModelConfig, build_demo_components
from engine.demo.unet_training import KIND_CYCLE, UnetTrainingConfig, train_unet, training_batch

TINY = UnetTrainingConfig(batch_size=4, steps=4, checkpoint_every=2)


def components(folder: Path) -> DemoComponents:
    torch.manual_seed(0)
    return build_demo_components(DemoModelConfig(), folder)


def test_batches_are_reproducible_and_cycle_through_every_location_kind(tmp_path: Path) -> None:
    parts = components(tmp_path / "tok")
    with torch.no_grad():
        first, again = training_batch(TINY, 5, parts), training_batch(TINY, 5, parts)
        kinds = [training_batch(TINY, step, parts).kind for step in range(4)]
    assert torch.equal(first.images, again.images) and first.prompts == again.prompts
    for key, value in first.grounding.items():
        assert torch.equal(value, again.grounding[key]), key
    assert kinds == list(KIND_CYCLE)
    assert first.grounding["masks"].shape == (4, 30)


def test_some_samples_lose_their_grounding_or_caption(tmp_path: Path) -> None:
    parts = components(tmp_path / "tok")
    config = UnetTrainingConfig(batch_size=32, null_grounding=0.5, empty_caption=0.5)
    with torch.no_grad():
        batch = training_batch(config, 0, parts)
    present = batch.grounding["masks"].sum(dim=1)
    assert (present == 0).any() and (present > 0).any()
    assert "" in batch.prompts and any(batch.prompts)


def test_training_lowers_the_loss_and_resumes_exactly(tmp_path: Path) -> None:
    whole = train_unet(
        TINY, components(tmp_path / "a"), components(tmp_path / "v").vae, tmp_path / "whole", log=lambda _: None
    )
    split_parts = components(tmp_path / "b")
    train_unet(
        TINY, split_parts, components(tmp_path / "v2").vae, tmp_path / "split", log=lambda _: None, stop_after=2
    )
    messages: list[str] = []
    resumed = train_unet(
        TINY, components(tmp_path / "c"), components(tmp_path / "v3").vae, tmp_path / "split", log=messages.append
    )
    assert messages[0] == "resuming at step 2"
    for name, tensor in whole.unet.state_dict().items():
        torch.testing.assert_close(resumed.unet.state_dict()[name], tensor, rtol=0, atol=1e-6, msg=name)
    losses = [float(line.split(",")[1]) for line in (tmp_path / "whole" / "unet_loss.csv").read_text().splitlines()]
    assert len(losses) == 4 and losses[-1] < losses[0]
