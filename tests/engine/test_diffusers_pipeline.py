"""The engine as a diffusers pipeline: the UNet and the pipeline round-trip through save_pretrained /
from_pretrained offline, the diffusers-style call equals the app's RenderRequest path, drops are per call,
and demo folders of the app's (older) layout still load."""

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from engine.models.builder import InstanceUNet2DConditionModel, build_instance_unet, position_net_of
from engine.models.instance_unet import InstanceConfigError, position_net_config
from engine.models.unifusion import OFFICIAL_DROPS
from engine.pipeline import InstanceDiffusionPipeline, InstanceDiffusionPipelineOutput
from engine.request import InstanceKind, InstanceSpec, RenderRequest, RequestValidationError
from tests.engine.models.test_unifusion import grounding
from tests.engine.tiny_sd import TINY_CONFIG, tiny_unet

BOX = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.6))
POINT = InstanceSpec("a blue star", InstanceKind.POINT, point=(0.75, 0.3))


def test_the_instance_unet_round_trips_through_save_and_from_pretrained(tmp_path: Path, no_network: list[Any]) -> None:
    unet = tiny_unet()
    unet.save_pretrained(tmp_path / "unet")
    config = json.loads((tmp_path / "unet" / "config.json").read_text())
    assert config["_class_name"] == "InstanceUNet2DConditionModel" and config["attention_type"] == "gated"
    assert config["instance_position_net"]["text_dim"] == 32 and "drops" not in config["instance_position_net"]
    loaded = InstanceUNet2DConditionModel.from_pretrained(tmp_path / "unet", local_files_only=True).eval()
    assert loaded.instance_config.position_net == TINY_CONFIG.position_net
    assert loaded.instance_config.fusers == TINY_CONFIG.fusers
    before, after = unet.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    x, context = torch.randn(2, 4, 8, 8), torch.randn(2, 77, 32)
    kwargs = {"gligen": grounding(batch=2)}
    with torch.no_grad():
        expected = unet(x, 500, encoder_hidden_states=context, cross_attention_kwargs=kwargs).sample
        actual = loaded(x, 500, encoder_hidden_states=context, cross_attention_kwargs=kwargs).sample
    assert torch.equal(expected, actual)


@pytest.mark.parametrize(
    ("setting", "message"), [({"no_such_width": 3}, "unknown settings: no_such_width"), (["x"], "must be a mapping")]
)
def test_a_bad_instance_setting_in_a_unet_config_is_named(setting: Any, message: str) -> None:
    with pytest.raises(InstanceConfigError, match=message):
        position_net_config(setting)


def test_an_older_config_with_drops_still_builds() -> None:
    config = position_net_config({"text_dim": 32, "drops": {"boxes": True}})
    assert config.text_dim == 32


def test_build_instance_unet_gives_the_registered_class() -> None:
    unet = build_instance_unet(TINY_CONFIG, device="meta")
    assert isinstance(unet, InstanceUNet2DConditionModel)
    assert unet.config["instance_scaleu"] is True


def test_drops_are_per_call_and_calls_do_not_affect_each_other() -> None:
    net = position_net_of(build_instance_unet(TINY_CONFIG)).eval()
    assert not hasattr(net, "drops")
    inputs = grounding()
    with torch.no_grad():
        alone = {kind: net(**inputs, drops=OFFICIAL_DROPS[kind]) for kind in ("box", "point")}
        # Interleaved: each call sees only its own drops.
        mixed = [(kind, net(**inputs, drops=OFFICIAL_DROPS[kind])) for kind in ("point", "box", "point", "box")]
    assert not torch.equal(alone["box"], alone["point"])
    for kind, tokens in mixed:
        assert torch.equal(tokens, alone[kind])


def test_the_diffusers_call_equals_the_render_request_path(pipe: InstanceDiffusionPipeline) -> None:
    request = RenderRequest(prompt="shapes", width=64, height=64, seed=3, steps=4, mis=0.5, instances=(BOX, POINT))
    expected = pipe.render(request)
    dicts = [
        {"caption": "a red circle", "box": [0.1, 0.1, 0.5, 0.6]},
        {"caption": "a blue star", "point": [0.75, 0.3]},
    ]
    common = {"prompt": "shapes", "height": 64, "width": 64, "num_inference_steps": 4, "mis": 0.5}
    by_seed = pipe(**common, instances=dicts, seed=3, output_type="np")
    assert isinstance(by_seed, InstanceDiffusionPipelineOutput)
    assert torch.equal(by_seed.latents, expected.latents)
    assert np.array_equal((by_seed.images[0] * 255).astype(np.uint8), expected.image)
    # A CPU generator seeded the same draws the same noise; specs work as well as dicts.
    by_generator = pipe(
        **common, instances=[BOX, POINT], generator=torch.Generator().manual_seed(3), output_type="latent"
    )
    assert torch.equal(by_generator.images, expected.latents)
    pil = pipe(**common, instances=dicts, seed=3).images[0]
    # diffusers rounds to uint8 where the app truncates (as the official code): at most 1 apart.
    assert pil.size == (64, 64) and np.abs(np.asarray(pil).astype(int) - expected.image).max() <= 1


def test_step_callbacks_see_every_step_as_diffusers_calls_them(pipe: InstanceDiffusionPipeline) -> None:
    seen: list[tuple[int, int]] = []
    legacy: list[int] = []

    def on_step_end(p: Any, index: int, t: int, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        assert p is pipe and tensors["latents"].shape == (1, 4, 8, 8)
        seen.append((index, t))
        return tensors

    pipe(
        prompt="shapes",
        height=64,
        width=64,
        num_inference_steps=4,
        seed=1,
        output_type="latent",
        callback_on_step_end=on_step_end,
        callback=lambda i, _t, _latents: legacy.append(i),
        callback_steps=2,
    )
    assert [index for index, _ in seen] == [0, 1, 2, 3] and legacy == [1, 3]
    assert [t for _, t in seen] == sorted((t for _, t in seen), reverse=True)


@pytest.mark.parametrize(
    "instance",
    [{"caption": "", "box": [0.1, 0.1, 0.5, 0.5]}, {"caption": "x", "box": [0.5, 0.1, 0.1, 0.5]}, {"caption": "x"}],
)
def test_bad_instances_in_a_diffusers_call_are_a_validation_error(
    pipe: InstanceDiffusionPipeline, instance: dict[str, Any]
) -> None:
    with pytest.raises(RequestValidationError, match=r"instances\[0\]|instance 1"):
        pipe(prompt="shapes", height=64, width=64, num_inference_steps=2, seed=1, instances=[instance])


def test_a_mask_array_is_accepted_as_an_instance(pipe: InstanceDiffusionPipeline) -> None:
    mask = np.zeros((64, 64), dtype=bool)
    mask[10:40, 20:50] = True
    out = pipe(
        prompt="shapes",
        height=64,
        width=64,
        num_inference_steps=2,
        seed=1,
        output_type="latent",
        instances=[{"caption": "a red circle", "mask": mask, "box": [20 / 64, 10 / 64, 50 / 64, 40 / 64]}],
    )
    assert torch.isfinite(out.images).all()


def test_the_tiny_pipeline_round_trips_offline(
    pipe: InstanceDiffusionPipeline, tmp_path: Path, no_network: list[Any]
) -> None:
    arguments = {"prompt": "shapes", "height": 64, "width": 64, "num_inference_steps": 4, "output_type": "np"}
    instances = [{"caption": "a red circle", "box": [0.1, 0.1, 0.5, 0.6]}]
    pipe.clear_caches()  # texts encoded in other batches (earlier tests) differ in the last bit
    before = pipe(**arguments, instances=instances, generator=torch.Generator().manual_seed(3)).images[0]
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["unet"] == ["engine.models.instance_unet", "InstanceUNet2DConditionModel"]
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]
    loaded = InstanceDiffusionPipeline.from_pretrained(tmp_path / "pipe", local_files_only=True)
    assert set(loaded.components) == {"vae", "text_encoder", "tokenizer", "unet", "scheduler"}
    after = loaded(**arguments, instances=instances, generator=torch.Generator().manual_seed(3)).images[0]
    assert np.array_equal(before, after)


def test_the_demo_model_round_trips_as_the_issue_says(tmp_path: Path, no_network: list[Any]) -> None:
    from engine.providers import load_demo_model

    pipe = load_demo_model().pipeline
    pipe.save_pretrained(tmp_path / "demo")

    def image(p: InstanceDiffusionPipeline) -> np.ndarray:
        return p(  # type: ignore[no-any-return]
            prompt="a red circle on a white background",
            height=64,
            width=64,
            num_inference_steps=8,
            generator=torch.Generator().manual_seed(3),
            output_type="np",
        ).images[0]

    before = image(pipe)
    loaded = InstanceDiffusionPipeline.from_pretrained(tmp_path / "demo", local_files_only=True)
    assert np.array_equal(before, image(loaded))
    assert loaded.config.preview_factors == pipe.config.preview_factors
    # The app loads the saved folder too, and renders the same.
    model = load_demo_model(tmp_path / "demo")
    assert set(model.hashes) == {"vae", "text_encoder", "unet"}
    request = RenderRequest(prompt="a red circle", width=64, height=64, seed=2, steps=4, instances=(BOX,))
    assert np.array_equal(model.pipeline.render(request).image, pipe.render(request).image)


def test_an_old_layout_demo_folder_loads_and_migrates(untrained_demo_model: Path, tmp_path: Path) -> None:
    """A folder written the old way (config.json with `drops`, no `fusers`) loads, and migrates to a pipeline folder."""
    from engine.demo.model import load_demo, migrate_demo
    from engine.providers import load_demo_model

    old = Path(shutil.copytree(untrained_demo_model, tmp_path / "old"))
    config = json.loads((old / "config.json").read_text())
    config["position_net"]["drops"] = {"boxes": False, "points": False, "scribbles": True, "masks": False}
    config.pop("fusers", None)
    (old / "config.json").write_text(json.dumps(config))
    components, _ = load_demo(old)
    assert isinstance(components.unet, InstanceUNet2DConditionModel)
    migrate_demo(old, tmp_path / "new")
    request = RenderRequest(prompt="a red circle", width=64, height=64, seed=2, steps=3, instances=(BOX,))
    old_image = load_demo_model(old).pipeline.render(request).image
    assert np.array_equal(load_demo_model(tmp_path / "new").pipeline.render(request).image, old_image)
    assert not (old / "model_index.json").exists(), "the old folder is left as it was"


def test_a_render_scheduler_keeps_the_components_training_schedule(pipe: InstanceDiffusionPipeline) -> None:
    from engine.request import Scheduler

    original = pipe.scheduler
    try:
        pipe.scheduler = type(original).from_config({**original.config, "beta_end": 0.02})
        for kind in Scheduler:
            assert pipe.request_scheduler(kind).config["beta_end"] == 0.02
    finally:
        pipe.scheduler = original
    assert pipe.request_scheduler(Scheduler.DDIM).config["beta_end"] == 0.012


def test_low_memory_does_nothing_on_the_cpu(pipe: InstanceDiffusionPipeline) -> None:
    assert pipe.enable_low_memory() == []
    assert not getattr(pipe.vae, "use_tiling", False)
