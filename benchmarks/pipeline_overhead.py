"""The cost of our pipeline over plain Stable Diffusion: a render with no instances vs diffusers' pipeline.

With no instances `InstanceDiffusionPipeline` is Stable Diffusion (the fusers never run), so a render must
cost what diffusers' `StableDiffusionPipeline` costs on the same components. Both pipelines here share the
same objects (UNet, VAE, text encoder, tokenizer) of a random-weight SD1.5-shaped model (see
`benchmarks/common.py`), with a fresh PLMS scheduler per render, the same seed, steps, guidance, canvas and
negative prompt. Both are timed on the whole render with a full VAE decode: diffusers with
`output_type="np"` (float pixels), ours to its uint8 image. Our pipeline caches encoded text between
renders, so it is timed twice: with its text cache cleared before every render (like for like: both encode
the prompt and the negative prompt; the overhead figure uses this) and with a warm cache (a session's later
renders). A separate untimed diffusers render with `output_type="latent"` checks that the final latents
agree (max |delta| <= 1e-5). Prints the median of each and the overhead in percent (target <= 5 %); it
never asserts on speed.

Run:
    .venv/bin/python benchmarks/pipeline_overhead.py                 # size small, 20 steps, median of 5
    .venv/bin/python benchmarks/pipeline_overhead.py --size medium --steps 30 --repeats 7
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline

from benchmarks.common import (
    SIZES,
    add_common_args,
    build_pipeline,
    environment,
    max_abs_diff,
    median,
    table,
    timed,
)
from engine.pipeline import InstanceDiffusionPipeline, PipelineOutput
from engine.request import RenderRequest, Scheduler
from engine.schedulers import make_scheduler

PROMPT = "a still life on a kitchen table"
NEGATIVE = "blurry, low quality"
GUIDANCE = 7.5
LATENT_TOLERANCE = 1e-5  # max |delta| of the final latents
OVERHEAD_TARGET = 5.0  # percent

DIFFUSERS = "diffusers StableDiffusionPipeline"
OURS_COLD = "ours, text cache cleared"
OURS_WARM = "ours, text cache warm"


def reference_pipeline(pipe: InstanceDiffusionPipeline) -> StableDiffusionPipeline:
    reference = StableDiffusionPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=make_scheduler(Scheduler.PLMS),  # type: ignore[arg-type]
        safety_checker=None,  # type: ignore[arg-type]
        feature_extractor=None,  # type: ignore[arg-type]
        requires_safety_checker=False,
    )
    reference.set_progress_bar_config(disable=True)  # type: ignore[no-untyped-call]
    return reference


def render_reference(reference: StableDiffusionPipeline, request: RenderRequest, output_type: str) -> Any:
    """diffusers' render of `request`, with a fresh PLMS scheduler as our pipeline makes one per render."""
    reference.scheduler = make_scheduler(Scheduler.PLMS)
    return reference(
        request.prompt,
        negative_prompt=request.negative_prompt,
        height=request.height,
        width=request.width,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance,
        generator=torch.Generator("cpu").manual_seed(request.seed),
        output_type=output_type,
    ).images


def render_ours(pipe: InstanceDiffusionPipeline, request: RenderRequest, cold: bool) -> PipelineOutput:
    if cold:
        pipe.clear_text_caches()
    return pipe.render(request)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(parser, steps=20, repeats=5)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")
    size = SIZES[args.size]
    print("Pipeline overhead: our pipeline with no instances vs diffusers' StableDiffusionPipeline")
    print(
        f"{size.describe()}; PLMS, {args.steps} steps, guidance {GUIDANCE:g}; "
        "same UNet/VAE/text encoder/tokenizer objects; whole render with full VAE decode for both"
    )
    print(f"{environment(args)}; median of {args.repeats} run(s) per path after one warm-up")
    start = time.perf_counter()

    pipe = build_pipeline(size, seed=0)
    reference = reference_pipeline(pipe)
    request = RenderRequest(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        width=size.image_side,
        height=size.image_side,
        seed=args.seed,
        steps=args.steps,
        guidance=GUIDANCE,
        scheduler=Scheduler.PLMS,
    )
    paths: dict[str, Callable[[], Any]] = {
        DIFFUSERS: lambda: render_reference(reference, request, "np"),
        OURS_COLD: lambda: render_ours(pipe, request, cold=True),
        OURS_WARM: lambda: render_ours(pipe, request, cold=False),
    }
    for path in paths.values():  # warm up once
        path()

    seconds: dict[str, list[float]] = {name: [] for name in paths}
    stages: dict[str, list[float]] = {"encode": [], "sample": [], "decode": []}
    last: dict[str, Any] = {}
    names = list(paths)
    for repeat in range(args.repeats):
        # Rotate the order, so a drift in machine speed does not favour one path.
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            elapsed, last[name] = timed(paths[name])
            seconds[name].append(elapsed)
            if name == OURS_COLD:
                for stage, values in stages.items():
                    values.append(last[name].timings[stage])

    # Correctness: the final latents (an extra, untimed diffusers render) and the decoded images.
    expected_latents = render_reference(reference, request, "latent")
    ours_output: PipelineOutput = last[OURS_COLD]
    latent_delta = max_abs_diff(ours_output.latents, expected_latents)
    reference_image = (np.asarray(last[DIFFUSERS])[0] * 255).astype(np.uint8)
    image_delta = int(np.abs(ours_output.image.astype(np.int16) - reference_image.astype(np.int16)).max())

    base = median(seconds[DIFFUSERS])
    rows = []
    for name, values in seconds.items():
        relative = "" if name == DIFFUSERS else f"{(median(values) / base - 1) * 100:+.1f} %"
        rows.append([name, f"{median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}", relative])
    print()
    print(table(["path", "median s", "min s", "max s", "vs diffusers"], rows))
    print()
    breakdown = ", ".join(f"{stage} {median(values):.3f} s" for stage, values in stages.items())
    print(f"ours (cache cleared), median per stage: {breakdown}")
    overhead = (median(seconds[OURS_COLD]) / base - 1) * 100
    verdict = "within" if overhead <= OVERHEAD_TARGET else "OVER"
    # Other load only ever adds time, so the fastest runs are a second, less noisy estimate.
    fastest = (min(seconds[OURS_COLD]) / min(seconds[DIFFUSERS]) - 1) * 100
    print(
        f"overhead (ours, cache cleared / diffusers - 1): {overhead:+.1f} % by median "
        f"({verdict} the {OVERHEAD_TARGET:g} % target), {fastest:+.1f} % by fastest run; "
        f"with a warm text cache: {(median(seconds[OURS_WARM]) / base - 1) * 100:+.1f} % by median"
    )
    agree = latent_delta <= LATENT_TOLERANCE
    print(
        f"latents agree (max |delta| <= {LATENT_TOLERANCE:g}): {'yes' if agree else 'NO'} "
        f"(max |delta| {latent_delta:.1e}); 8-bit images max |delta| {image_delta}"
    )
    print(f"total time {time.perf_counter() - start:.0f} s")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
