"""The pipeline on tiny real components (diffusers UNet/VAE, transformers CLIP, the bundled tokenizer)."""

import random

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline

from engine.pipeline import InstanceDiffusionPipeline, NonFiniteOutputError, grounding_config
from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest, Scheduler
from engine.sampler import RenderCancelled
from engine.schedulers import make_scheduler

BOX = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.6))
POINT = InstanceSpec("a blue star", InstanceKind.POINT, point=(0.75, 0.3))
SCRIBBLE = InstanceSpec("a green snake", InstanceKind.SCRIBBLE, scribble=((0.2, 0.8), (0.5, 0.7), (0.8, 0.9)))
POLYGON = InstanceSpec("a yellow kite", InstanceKind.MASK, polygon=((0.6, 0.5), (0.9, 0.5), (0.75, 0.95)))
_bitmap = np.zeros((32, 32), np.uint8)
_bitmap[4:12, 18:30] = 1
BITMAP = InstanceSpec("a grey cloud", InstanceKind.MASK, mask=MaskRLE.from_bitmap(_bitmap))


def request(*instances: InstanceSpec, **overrides: object) -> RenderRequest:
    settings: dict[str, object] = {"prompt": "shapes on a table", "width": 64, "height": 64, "seed": 7, "steps": 6}
    return RenderRequest(instances=instances, **{**settings, **overrides})  # type: ignore[arg-type]


def test_without_instances_it_is_stable_diffusion(pipe: InstanceDiffusionPipeline) -> None:
    reference = StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=make_scheduler(Scheduler.PLMS),  # type: ignore[arg-type]
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    reference.set_progress_bar_config(disable=True)
    for scheduler in Scheduler:
        reference.scheduler = make_scheduler(scheduler)  # type: ignore[assignment]
        expected = reference(
            "shapes on a table",
            negative_prompt="blurry",
            height=64,
            width=128,
            num_inference_steps=6,
            guidance_scale=7.5,
            generator=torch.Generator("cpu").manual_seed(7),
            output_type="latent",
        ).images
        ours = pipe.render(request(negative_prompt="blurry", width=128, scheduler=scheduler))
        torch.testing.assert_close(ours.latents, expected, rtol=0, atol=1e-5, msg=f"latents differ with {scheduler}")


def test_same_request_renders_bit_identical_images(pipe: InstanceDiffusionPipeline) -> None:
    req = request(BOX, POINT, SCRIBBLE, POLYGON, BITMAP)
    assert np.array_equal(pipe.render(req).image, pipe.render(req).image)


def test_noise_depends_only_on_seed_and_size(pipe: InstanceDiffusionPipeline) -> None:
    base = pipe.prepare_latents(request(BOX))
    moved = InstanceSpec(BOX.caption, BOX.kind, box=(0.4, 0.3, 0.9, 0.8))
    assert torch.equal(pipe.prepare_latents(request(moved, POINT)), base)
    assert torch.equal(pipe.prepare_latents(request()), base)
    assert not torch.equal(pipe.prepare_latents(request(seed=8)), base)
    assert pipe.prepare_latents(request(width=128)).shape[-1] == 16


@pytest.mark.parametrize(
    "instance", [BOX, POINT, SCRIBBLE, POLYGON, BITMAP], ids=lambda i: i.kind.value + " " + i.caption
)
def test_every_location_kind_steers_the_render(pipe: InstanceDiffusionPipeline, instance: InstanceSpec) -> None:
    plain = pipe.render(request()).latents
    grounded = pipe.render(request(instance)).latents
    assert not torch.allclose(grounded, plain, atol=1e-4)


def test_moving_an_instance_changes_the_render(pipe: InstanceDiffusionPipeline) -> None:
    moved = InstanceSpec(BOX.caption, BOX.kind, box=(0.5, 0.4, 0.9, 0.9))
    assert not torch.allclose(
        pipe.render(request(BOX, mis=0.0)).latents, pipe.render(request(moved, mis=0.0)).latents, atol=1e-4
    )


def test_the_multi_instance_sampler_runs_one_chain_per_instance_in_one_batch(pipe: InstanceDiffusionPipeline) -> None:
    calls: list[int] = []
    handle = pipe.unet.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    try:
        with_mis = pipe.render(request(BOX, POINT, SCRIBBLE, mis=0.5)).latents
        mis_calls, calls[:] = list(calls), []
        without = pipe.render(request(BOX, POINT, SCRIBBLE, mis=0.0)).latents
    finally:
        handle.remove()
    # PLMS, 6 steps: 7 iterations; the first int(0.5 * 6) = 3 steps (4 iterations) run 4 chains x (uncond, cond).
    assert mis_calls == [8] * 4 + [2] * 3
    assert calls == [2] * 7
    assert not torch.allclose(with_mis, without, atol=1e-4)


def test_max_batch_splits_calls_without_changing_the_result(pipe: InstanceDiffusionPipeline) -> None:
    req = request(BOX, POINT, mis=0.5)
    whole = pipe.render(req).latents
    chunked = pipe.render(req, max_batch=2).latents
    # The same maths; only float rounding differs with the batch size (amplified by guidance 7.5).
    assert ((chunked - whole).norm() / whole.norm()).item() < 1e-5


@pytest.mark.parametrize("scheduler", list(Scheduler))
def test_every_scheduler_renders_an_image(pipe: InstanceDiffusionPipeline, scheduler: Scheduler) -> None:
    out = pipe.render(request(BOX, POLYGON, scheduler=scheduler, width=128))
    assert out.image.shape == (64, 128, 3) and out.image.dtype == np.uint8
    assert out.image.std() > 0
    assert set(out.timings) >= {"encode", "sample", "decode", "total"}


def test_cancel_at_a_random_step_stops_at_once_and_returns_nothing(pipe: InstanceDiffusionPipeline) -> None:
    # BOX + POINT with the default mis: 7 UNet calls; cancel once a random one of them has begun (seeded).
    for stop_after in sorted(random.Random(11).sample(range(7), 4)):
        unet_calls: list[int] = []
        handle = pipe.unet.register_forward_pre_hook(lambda *_, seen=unet_calls: seen.append(1))
        try:
            with pytest.raises(RenderCancelled):
                pipe.render(request(BOX, POINT), should_cancel=lambda seen=unet_calls, n=stop_after: len(seen) >= n)
        finally:
            handle.remove()
        assert len(unet_calls) == stop_after, "no UNet call after the cancel"


def test_a_cancel_during_a_unet_call_lands_at_its_next_block(pipe: InstanceDiffusionPipeline) -> None:
    # At SD1.5 size on a CPU one UNet call takes seconds: a cancel that arrives during one (here, once the
    # second call's first down block has run) stops it there, before its middle and up blocks.
    clicked = {"cancel": False}
    calls: list[int] = []
    mids: list[int] = []
    handles = [
        pipe.unet.register_forward_pre_hook(lambda *_: calls.append(1)),
        pipe.unet.down_blocks[0].register_forward_hook(
            lambda *_: clicked.update(cancel=clicked["cancel"] or len(calls) == 2)
        ),
        pipe.unet.mid_block.register_forward_pre_hook(lambda *_: mids.append(len(calls))),
    ]
    try:
        with pytest.raises(RenderCancelled):
            pipe.render(request(BOX, POINT), should_cancel=lambda: clicked["cancel"])
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls) == 2 and mids == [1], "the second call stopped inside, before its middle block"


def test_a_cancel_after_the_last_step_skips_the_decode(pipe: InstanceDiffusionPipeline) -> None:
    clicked = {"cancel": False}
    decoded: list[int] = []
    handle = pipe.vae.decoder.register_forward_pre_hook(lambda *_: decoded.append(1))
    try:
        with pytest.raises(RenderCancelled):
            pipe.render(
                request(BOX),
                callback=lambda done, total, _preview: clicked.update(cancel=done == total),
                should_cancel=lambda: clicked["cancel"],
            )
    finally:
        handle.remove()
    assert decoded == []


def test_the_cancel_checks_leave_the_render_bit_identical(pipe: InstanceDiffusionPipeline) -> None:
    req = request(BOX, POINT)
    assert torch.equal(pipe.render(req, should_cancel=lambda: False).latents, pipe.render(req).latents)


def test_nan_at_a_chosen_step_is_an_error_not_an_image(pipe: InstanceDiffusionPipeline) -> None:
    seen = {"calls": 0}

    def poison(_module: torch.nn.Module, _args: object, output: object) -> object:
        seen["calls"] += 1
        if seen["calls"] == 4:
            output.sample[:] = float("nan")  # type: ignore[attr-defined]
        return output

    handle = pipe.unet.register_forward_hook(poison)
    try:
        with pytest.raises(NonFiniteOutputError, match="NaN"):
            pipe.render(request(BOX))
    finally:
        handle.remove()


def test_a_non_finite_half_precision_decode_is_retried_in_fp32(pipe: InstanceDiffusionPipeline) -> None:
    latents = pipe.render(request(BOX)).latents
    pipe.vae.to(torch.bfloat16)

    def overflow(module: torch.nn.Module, _args: object, output: torch.Tensor) -> torch.Tensor:
        return output * float("inf") if output.dtype == torch.bfloat16 else output

    handle = pipe.vae.decoder.conv_out.register_forward_hook(overflow)
    try:
        notes: list[str] = []
        pixels = pipe.decode(latents, notes)
    finally:
        handle.remove()
        pipe.vae.to(torch.float32)
    assert torch.isfinite(pixels).all() and notes == ["vae decoded in fp32 after a non-finite result"]
    assert pipe.vae.dtype == torch.float32


@pytest.mark.parametrize("scheduler", list(Scheduler))
def test_progress_counts_the_steps_the_user_set_with_previews_at_the_chosen_rate(
    pipe: InstanceDiffusionPipeline, scheduler: Scheduler
) -> None:
    # PLMS makes 7 UNet evaluations for 6 steps (its first step evaluates twice): progress still says 1..6 of 6.
    reports: list[tuple[int, int, bool]] = []
    previews = []

    def callback(done: int, total: int, preview: np.ndarray | None) -> None:
        reports.append((done, total, preview is not None))
        if preview is not None:
            previews.append(preview)

    pipe.render(request(BOX, steps=6, scheduler=scheduler), callback=callback, preview_every=3)
    assert [r[:2] for r in reports] == [(i, 6) for i in range(1, 7)]
    assert [r[2] for r in reports] == [False, False, True, False, False, True]
    assert previews[0].shape == (64, 64, 3) and previews[0].dtype == np.uint8  # the image's size


def test_a_small_vae_decodes_the_previews_a_large_one_is_approximated_smoothly(
    pipe: InstanceDiffusionPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    previews: list[np.ndarray] = []
    out = pipe.render(request(BOX, steps=4), callback=lambda _d, _t, p: previews.append(p), preview_every=2)
    assert pipe.preview_decodes  # the tiny VAE: decoding it costs little
    assert np.array_equal(previews[-1], out.image)  # the last preview is the picture itself, not the latents

    monkeypatch.setattr(pipe, "preview_decodes", False)  # as with SD1.5's VAE: seconds per decode on a CPU
    approximated = pipe.preview(out.latents)
    assert approximated.shape == out.image.shape  # scaled up from the 8x8 latents...
    changes = np.abs(np.diff(approximated.astype(int), axis=1)).max(axis=2) > 0
    assert changes.mean() > 0.5, "...smoothly: blocks of 8 pixels would change at 7 columns of 63"


def test_each_text_is_encoded_once(pipe: InstanceDiffusionPipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[str] = []
    real = pipe._encode
    monkeypatch.setattr(pipe, "_encode", lambda texts, pad_to_max: encoded.extend(texts) or real(texts, pad_to_max))
    req = request(InstanceSpec("a unique cat", InstanceKind.BOX, box=(0.1, 0.1, 0.4, 0.4)), prompt="a unique scene")
    pipe.render(req)
    pipe.render(req)
    assert encoded.count("a unique cat") == 2  # once as a caption feature, once as its chain's prompt
    assert encoded.count("a unique scene") == 1


def test_canvas_must_fit_the_model(pipe: InstanceDiffusionPipeline) -> None:
    with pytest.raises(ValueError, match="width 96 must be a multiple of 64"):
        pipe.render(request(width=96))


def test_grounding_config_follows_the_kinds_present() -> None:
    assert grounding_config([BOX, POINT]) == "box"
    assert grounding_config([POINT]) == "point"
    assert grounding_config([BOX, POLYGON]) == "mask"
    assert grounding_config([BOX, SCRIBBLE, POLYGON]) == "scribble"


def test_instance_masked_fusers_get_each_rows_regions(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With a masked model, every grounded UNet call carries regions: all instances for the full chain,
    instance k alone (slot 0) for its own chain, none for the unconditional rows; non-square canvases too."""
    from engine.demo.model import DemoModelConfig, build_demo_components
    from engine.models.fusers import RegionTokens, fusers

    torch.manual_seed(0)
    parts = build_demo_components(DemoModelConfig(), tmp_path_factory.mktemp("tok"))
    demo = InstanceDiffusionPipeline(parts.vae, parts.text_encoder, parts.tokenizer, parts.unet.eval(), None)
    seen: list[torch.Tensor] = []

    def capture(_module: torch.nn.Module, args: tuple[object, ...]) -> None:
        objs = args[1]
        assert isinstance(objs, RegionTokens)
        seen.append(objs.regions)

    handle = fusers(parts.unet)[0].register_forward_pre_hook(capture)
    wide_box = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.0, 0.0, 0.25, 0.5))
    point = InstanceSpec("a blue star", InstanceKind.POINT, point=(0.9, 0.9))
    try:
        demo.render(request(wide_box, point, width=128, height=64, steps=4, mis=0.5, alpha=1.0))
    finally:
        handle.remove()
    first = seen[0]  # rows: (uncond, cond) for the full chain, then for each instance's chain
    assert first.shape == (6, 30, 16, 32)
    assert first[[0, 2, 4]].sum() == 0
    assert first[1, 0, :8, :8].all() and first[1, 0].sum() == 64  # the box: the left quarter, top half
    assert first[1, 1, 15, 29] == 1 and first[1, 2:].sum() == 0
    assert torch.equal(first[3, 0], first[1, 0]) and first[3, 1:].sum() == 0
    assert torch.equal(first[5, 0], first[1, 1]) and first[5, 1:].sum() == 0
    assert seen[-1].shape == (2, 30, 16, 32)  # after the merge: chain 0 alone
