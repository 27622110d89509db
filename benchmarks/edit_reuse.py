"""Re-render after moving one instance: unchanged instance chains from the chain cache vs a first render.

With `mis > 0` and n instances, the first `int(mis * steps)` steps run 1 + n chains (the full condition and
each instance alone); chain k depends only on instance k, the noise, the negative prompt, the settings and
the model. `InstanceDiffusionPipeline(..., reuse_chains=True)` (as `engine.runner.Runner.render` calls it)
keeps each instance chain's latents at the merge point in `pipeline.chain_cache`, so a re-render after
moving one instance of n runs 2 chains during the MIS steps instead of 1 + n (the full chain always runs).

For the bundled demo model (at its own 64x64 scale) and the random-weight SD1.5-shaped benchmark model
(`--size`, see `benchmarks/common.py`), and for 3 and 5 box instances, this script times
  first render: chain cache and text caches cleared (what a fresh scene costs), and
  re-render: the same request with its last instance moved, same seed and settings, the chain cache
    holding the first render's chains and the text caches warm, as in the app (the prompt and every caption
    are unchanged, so a re-render encodes no text: that saving is included, and is small next to the UNet),
at the request defaults (mis 0.36, guidance 7.5, PLMS; `--steps` shortens the schedule for the CPU). It
prints the median of each, the speed-up and the chains reused, and checks that the re-render equals a
render from nothing of the edited request (no cache; both latents decoded, max |delta| of the pixels in
[0, 1] <= 1e-5): it returns non-zero if not, or if a render did not reuse exactly the n - 1 unchanged
chains. It never asserts on speed.

Expected: UNet rows fall from 2 x (iterations + MIS iterations x n) to 2 x (iterations + MIS iterations);
the "UNet rows" column shows both. With 4 steps (the default), PLMS runs 5 iterations of which 2 are MIS
at mis 0.36, vs 19 of 51 for a 50-step render, so the rows ratio is 2.14 (5 instances) and 1.57 (3) here
against 2.09 and 1.54 at 50 steps. The speed-up follows that ratio, diluted by the grounding and the VAE
decode (both renders pay them) and raised a little by the text encoding (only the first render pays it). Pass `--steps 50` for the real schedule (minutes per render on a CPU).

The defaults (4 steps, median of 2) take 90 s at one thread on a 2-core machine busy with other work (so
at most that on 2 idle cores). The demo model's renders are short enough that fixed costs and other load
weigh heavily on its figures. On a busy machine pass `--threads 1`: torch's threads wait on each other
whenever another process holds a core, which made the whole run 3.5 to 5.5 minutes at 2 threads here and
swung a 0.3 s demo render up to 3 s; `--repeats 5` steadies the figures further.

Run:
    .venv/bin/python benchmarks/edit_reuse.py                    # demo + size small, 3 and 5 instances
    .venv/bin/python benchmarks/edit_reuse.py --repeats 5 --threads 1        # on a busy machine
    .venv/bin/python benchmarks/edit_reuse.py --steps 50 --repeats 1          # the real schedule, slow
    .venv/bin/python benchmarks/edit_reuse.py --instances 2 5 8 --model resources/demo/model
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.common import (
    BOXES,
    CAPTIONS,
    SIZES,
    add_common_args,
    environment,
    max_abs_diff,
    median,
    table,
    timed,
)
from benchmarks.common import build_pipeline as build_bench_pipeline
from engine.pipeline import InstanceDiffusionPipeline, PipelineOutput
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from engine.sampler import SamplerSettings
from engine.schedulers import make_scheduler, sampler_step

TOLERANCE = 1e-5  # max |delta| of decoded pixels in [0, 1]: re-render vs render from nothing
MOVE = 0.04  # the moved instance's shift, as a share of the canvas width
DEFAULTS = RenderRequest(prompt="defaults")  # the app's defaults for everything but the scene


@dataclass(frozen=True)
class Model:
    """A pipeline to benchmark, with what its requests need: render size, prompt and instance captions."""

    name: str
    pipe: InstanceDiffusionPipeline
    side: int
    captions: tuple[str, ...]
    prompt: Callable[[Sequence[str]], str]  # the scene's prompt, from its instances' captions


@dataclass
class Result:
    model: str
    instances: int
    rows_first: int
    rows_re: int
    expected_reused: int
    first: list[float] = field(default_factory=list)
    re: list[float] = field(default_factory=list)
    reused: set[int] = field(default_factory=set)  # counts seen over the repeats (one, when all is well)
    pixel_diff: float = 0.0

    @property
    def speedup(self) -> float:
        return median(self.first) / median(self.re)

    @property
    def reuse_ok(self) -> bool:
        return self.reused == {self.expected_reused}


def demo_model(folder: Path) -> Model:
    """The bundled demo model, loaded as the app loads it (`engine.providers`), at its own scale."""
    from engine.demo.world import COLOURS, SHAPES, instance_captions, scene_caption
    from engine.providers import load_demo_model

    loaded = load_demo_model(folder)
    side, _ = loaded.render_size(DEFAULTS.width, DEFAULTS.height)
    # Words of its world: one colour per instance (it tells instances apart by colour), shapes in turn.
    every = instance_captions()  # colour by colour, each with every shape
    captions = tuple(every[i * len(SHAPES) + i % len(SHAPES)] for i in range(len(COLOURS)))
    return Model("demo", loaded.pipeline, side, captions, partial(scene_caption, background="grey"))


def bench_model(size_name: str) -> Model:
    size = SIZES[size_name]
    pipe = build_bench_pipeline(size, seed=0)
    return Model(size_name, pipe, size.image_side, CAPTIONS, lambda _captions: "a still life on a kitchen table")


def make_request(model: Model, instances: int, steps: int, seed: int, mis: float) -> RenderRequest:
    specs = tuple(
        InstanceSpec(model.captions[i % len(model.captions)], InstanceKind.BOX, box=BOXES[i % len(BOXES)])
        for i in range(instances)
    )
    return replace(
        DEFAULTS,
        prompt=model.prompt([spec.caption for spec in specs]),
        width=model.side,
        height=model.side,
        seed=seed,
        steps=steps,
        mis=mis,
        instances=specs,
    )


def moved(request: RenderRequest) -> RenderRequest:
    """The request with its last instance moved right by MOVE (left where that would leave the canvas)."""
    last = request.instances[-1]
    assert last.box is not None
    x0, y0, x1, y1 = last.box
    shift = MOVE if x1 + MOVE <= 1.0 else -MOVE
    box = (round(x0 + shift, 6), y0, round(x1 + shift, 6), y1)
    return replace(request, instances=(*request.instances[:-1], replace(last, box=box)))


def expected_reuse(request: RenderRequest) -> int:
    """Chains a re-render after moving one instance reuses: all others, when this render merges chains."""
    settings = SamplerSettings(request.steps, request.guidance, request.alpha, request.mis)
    return len(request.instances) - 1 if 0 < settings.mis_steps < settings.steps else 0


def unet_rows(request: RenderRequest, skipped: int) -> int:
    """UNet rows of a render that takes `skipped` instance chains from the cache, counted as the sampler does."""
    settings = SamplerSettings(request.steps, request.guidance, request.alpha, request.mis)
    scheduler = make_scheduler(request.scheduler)
    scheduler.set_timesteps(request.steps)
    iterations = len(scheduler.timesteps)
    mis_steps = settings.mis_steps if request.instances else 0
    running = 1 + len(request.instances) - skipped
    cfg = 2 if request.guidance != 1.0 else 1  # an unconditional and a conditional row per chain
    return sum(
        cfg * (running if sampler_step(i, iterations, request.steps) < mis_steps else 1) for i in range(iterations)
    )


def first_render(pipe: InstanceDiffusionPipeline, request: RenderRequest) -> PipelineOutput:
    pipe.chain_cache.clear()
    pipe.clear_text_caches()
    return pipe.render(request, reuse_chains=True)


def re_render(pipe: InstanceDiffusionPipeline, request: RenderRequest) -> PipelineOutput:
    return pipe.render(request, reuse_chains=True)  # chain cache and text caches as the first render left them


@torch.no_grad()
def pixels(pipe: InstanceDiffusionPipeline, output: PipelineOutput) -> torch.Tensor:
    return pipe.decode(output.latents)


def run_case(model: Model, instances: int, args: argparse.Namespace) -> Result:
    request = make_request(model, instances, args.steps, args.seed, args.mis)
    edited = moved(request)
    expected = expected_reuse(request)
    result = Result(model.name, instances, unet_rows(request, 0), unet_rows(edited, expected), expected)
    reference = pixels(model.pipe, model.pipe.render(edited))  # from nothing: no chain cache at all
    for _ in range(args.repeats):
        seconds, _output = timed(partial(first_render, model.pipe, request))
        result.first.append(seconds)
        seconds, output = timed(partial(re_render, model.pipe, edited))
        result.re.append(seconds)
        result.reused.add(len(output.reused))
        result.pixel_diff = max(result.pixel_diff, max_abs_diff(pixels(model.pipe, output), reference))
    print(
        f"  {model.name}, {instances} instances: first render {median(result.first):.2f} s, "
        f"re-render {median(result.re):.2f} s, reused {sorted(result.reused)}",
        flush=True,
    )
    return result


def warm_up(model: Model, seed: int) -> None:
    """Lazy imports, allocator, oneDNN primitives: a short grounded MIS render, then a cached re-render."""
    request = make_request(model, 2, 2, seed, 0.5)
    first_render(model.pipe, request)
    re_render(model.pipe, moved(request))
    model.pipe.chain_cache.clear()


def report(results: Sequence[Result]) -> bool:
    headers = [
        "model",
        "instances",
        "UNet rows (first/re)",
        "first render s",
        "re-render s",
        "speed-up",
        "reused",
        "max |d pixel|",
        "equal",
    ]
    rows = [
        [
            r.model,
            str(r.instances),
            f"{r.rows_first}/{r.rows_re}",
            f"{median(r.first):.2f}",
            f"{median(r.re):.2f}",
            f"{r.speedup:.2f}x",
            f"{'/'.join(str(n) for n in sorted(r.reused))} of {r.instances}",
            f"{r.pixel_diff:.1e}",
            "yes" if r.pixel_diff <= TOLERANCE else "NO",
        ]
        for r in results
    ]
    print(table(headers, rows))
    print()
    by_case = ", ".join(f"{r.model} {r.instances} inst. {r.speedup:.2f}x" for r in results)
    # Other load only ever adds time, so the fastest runs are a second, less noisy estimate.
    fastest = ", ".join(f"{min(r.first) / min(r.re):.2f}x" for r in results)
    print(f"speed-up (first render / re-render after moving one instance): {by_case} (fastest runs: {fastest})")
    equal = all(r.pixel_diff <= TOLERANCE for r in results)
    worst = max(r.pixel_diff for r in results)
    verdict = "yes" if equal else "NO"
    print(f"re-render equals a render from nothing (max |d pixel| <= {TOLERANCE:g}): {verdict} (worst {worst:.1e})")
    reuse_ok = all(r.reuse_ok for r in results)
    print(f"reused every unchanged chain (n - 1 of n) and no other: {'yes' if reuse_ok else 'NO'}")
    return equal and reuse_ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from resources import resource_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(parser, steps=4, repeats=2)
    parser.add_argument(
        "--model", type=Path, default=resource_path("demo", "model"), help="demo model folder (default: bundled)"
    )
    parser.add_argument("--instances", type=int, nargs="+", default=[3, 5], help="box instance counts (default: 3 5)")
    parser.add_argument("--warm-ups", type=int, default=1, help="untimed warm-up renders per model (default: 1)")
    parser.add_argument("--mis", type=float, default=DEFAULTS.mis, help=f"mis (default: {DEFAULTS.mis:g})")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or args.warm_ups < 0:
        parser.error("--steps and --repeats must be at least 1, --warm-ups at least 0")
    if not all(2 <= n <= len(BOXES) for n in args.instances):
        parser.error(f"--instances must be between 2 and {len(BOXES)}")
    if not 0.0 <= args.mis <= 1.0:
        parser.error("--mis must be in [0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.model / "config.json").exists():
        print(f"error: no demo model at {args.model} (train one: scripts/train_demo.py)", file=sys.stderr)
        return 1
    print("Re-render after moving one instance (unchanged chains from the chain cache) vs a first render")
    print(
        f"request defaults: PLMS, {args.steps} steps, mis {args.mis:g}, guidance {DEFAULTS.guidance:g}, "
        f"alpha {DEFAULTS.alpha:g}; whole render timed; text caches cleared before the first render, warm for the re-render"
    )
    print(f"{environment(args)}; median of {args.repeats} run(s) per path after {args.warm_ups} warm-up(s)")
    start = time.perf_counter()
    results: list[Result] = []
    for build in (partial(demo_model, args.model), partial(bench_model, args.size)):
        model = build()
        where = "SD1.5-shaped, random weights" if model.name != "demo" else "bundled demo model"
        print(f"model {model.name} ({where}), {model.side}x{model.side} image")
        for _ in range(args.warm_ups):
            warm_up(model, args.seed)
        results.extend(run_case(model, n, args) for n in args.instances)
    print()
    ok = report(results)
    print(f"total time {time.perf_counter() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
