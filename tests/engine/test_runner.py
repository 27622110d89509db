"""The runner on a tiny pipeline: model reuse, typed failures, the out-of-memory ladder, recovery."""

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from engine.pipeline import InstanceDiffusionPipeline
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from engine.runner import (
    LoadedModel,
    ModelFilesError,
    NonFiniteRenderError,
    OutOfMemoryRenderError,
    RenderCancelled,
    Runner,
)
from engine.weights_io import WeightFileMissingError

BOX = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.6))
POINT = InstanceSpec("a blue star", InstanceKind.POINT, point=(0.75, 0.3))


def request(**overrides: object) -> RenderRequest:
    base: dict[str, object] = {"prompt": "shapes", "width": 64, "height": 64, "seed": 3, "steps": 4, "mis": 0.5}
    base["model_id"] = "tiny"
    base["instances"] = (BOX, POINT)
    return RenderRequest(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.fixture
def loads(pipe: InstanceDiffusionPipeline) -> list[str]:
    return []


@pytest.fixture
def runner(pipe: InstanceDiffusionPipeline, loads: list[str]) -> Runner:
    def provider(model_id: str) -> LoadedModel:
        loads.append(model_id)
        if model_id == "missing":
            raise WeightFileMissingError("/models/sd15", "put the Stable Diffusion 1.5 folder there")
        return LoadedModel(pipe, {"unet": "ab" * 32})

    pipe.chain_cache.clear()  # the module's pipeline is shared: each test starts without cached chains
    return Runner(provider)


@pytest.fixture
def oom_when(pipe: InstanceDiffusionPipeline) -> Iterator[dict[str, int]]:
    """Make the UNet run out of memory on batches larger than `limit["rows"]` (0: never)."""
    limit = {"rows": 0}

    def check(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if limit["rows"] and args[0].shape[0] > limit["rows"]:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = pipe.unet.register_forward_pre_hook(check)
    yield limit
    handle.remove()


def test_render_returns_the_image_and_how_it_was_made(runner: Runner) -> None:
    result = runner.render(request())
    assert result.image.shape == (64, 64, 3) and result.image.dtype == np.uint8
    assert result.model_hashes == {"unet": "ab" * 32}
    assert (result.device, result.dtype) == ("cpu", "float32")
    assert set(result.timings) >= {"load", "encode", "sample", "decode", "total"}
    assert result.notes == ()


def test_the_model_stays_loaded_between_jobs(runner: Runner, loads: list[str]) -> None:
    runner.render(request())
    runner.render(request(seed=4))
    assert loads == ["tiny"]
    assert runner.loaded_model_id == "tiny"


def test_a_re_render_after_an_edit_says_which_instance_chains_it_reused(runner: Runner) -> None:
    assert runner.render(request()).reused_instances == ()
    moved = InstanceSpec("a blue star", InstanceKind.POINT, point=(0.25, 0.7))
    result = runner.render(request(instances=(BOX, moved)))
    assert result.reused_instances == (0,)
    assert '"ab' in runner.model("tiny").pipeline.identity  # the model's hashes are part of every chain's key


def test_missing_model_files_are_a_typed_error_and_the_next_job_still_renders(runner: Runner) -> None:
    with pytest.raises(ModelFilesError, match=r"/models/sd15: file not found .* put the Stable Diffusion 1\.5 folder"):
        runner.render(request(model_id="missing"))
    assert runner.render(request()).image.std() > 0


def test_out_of_memory_falls_back_to_smaller_unet_calls(runner: Runner, oom_when: dict[str, int]) -> None:
    expected = runner.render(request()).image
    runner.model("tiny").pipeline.chain_cache.clear()  # else both instance chains are reused: 2 rows
    oom_when["rows"] = 4  # the full batch has 3 chains x 2 rows = 6
    result = runner.render(request())
    assert result.notes[0] == "out of memory at first; rendered with one chain per UNet call"
    assert np.abs(result.image.astype(int) - expected.astype(int)).max() <= 1  # the same render


def test_out_of_memory_everywhere_says_what_was_tried_and_the_next_job_renders(
    runner: Runner, oom_when: dict[str, int]
) -> None:
    oom_when["rows"] = -1  # every call fails: batches are always larger than -1 rows
    with pytest.raises(OutOfMemoryRenderError) as info:
        runner.render(request())
    assert info.value.tried == [
        "full batch",
        "one chain per UNet call",
        "one row per UNet call",
        "one row per UNet call and a tiled VAE decode",
    ]
    assert "render a smaller canvas" in str(info.value)
    oom_when["rows"] = 0
    result = runner.render(request())
    assert result.notes == () and result.image.std() > 0
    assert not getattr(runner.model("tiny").pipeline.vae, "use_tiling", False), "tiling is switched back off"


def test_offloading_is_only_tried_where_there_is_an_accelerator(runner: Runner, oom_when: dict[str, int]) -> None:
    oom_when["rows"] = -1
    with pytest.raises(OutOfMemoryRenderError) as info:
        runner.render(request())
    assert not any("on the CPU" in attempt for attempt in info.value.tried), "the pipeline is on the CPU already"


def test_components_on_other_devices_or_dtypes_still_render(pipe: InstanceDiffusionPipeline) -> None:
    """What offloading does on a GPU (text encoder and VAE apart from the UNet), shown with dtypes on the CPU."""
    expected = pipe.render(request()).image
    torch.nn.Module.to(pipe.text_encoder, torch.bfloat16)
    torch.nn.Module.to(pipe.vae, torch.float64)
    try:
        image = pipe.render(request()).image
    finally:
        torch.nn.Module.to(pipe.text_encoder, torch.float32)
        torch.nn.Module.to(pipe.vae, torch.float32)
    assert image.shape == expected.shape and np.abs(image.astype(int) - expected.astype(int)).mean() < 8


def test_nan_output_is_a_typed_error_and_the_next_job_renders(runner: Runner, pipe: InstanceDiffusionPipeline) -> None:
    def poison(_module: torch.nn.Module, _args: object, output: object) -> object:
        output.sample[:] = float("nan")  # type: ignore[attr-defined]
        return output

    handle = pipe.unet.register_forward_hook(poison)
    try:
        with pytest.raises(NonFiniteRenderError, match="NaN"):
            runner.render(request())
    finally:
        handle.remove()
    assert runner.render(request()).image.std() > 0


def test_cancellation_passes_through_and_the_next_job_renders(runner: Runner) -> None:
    with pytest.raises(RenderCancelled):
        runner.render(request(), should_cancel=lambda: True)
    assert runner.render(request()).image.std() > 0
