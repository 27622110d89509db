"""Multi-instance sampler: every chain of a step in one batched UNet call vs one chain at a time.

With `mis > 0` and n instances, the first `int(mis * steps)` steps run 1 + n chains (the full condition and
each instance alone). `engine.sampler.sample` puts the conditional and unconditional rows of all chains of
a step into one UNet call; `max_batch=2` splits them into one call per chain (its uncond + cond rows): the
one-chain-at-a-time reference path, with the same maths. This script renders the same request both ways on
the same random-weight SD1.5-shaped model (see `benchmarks/common.py`), for 3 and 8 box instances at mis 0.36 (the official default) and mis 1.0 (MIS for every step, so it dominates), with
guidance 7.5 and PLMS. It prints the median wall time of each path, the speed-up, and checks that both
paths give the same latents (relative L2 < 1e-5). Timings include the whole render (text encoding with
the pipeline's text cache cleared, grounding tokens, sampling and VAE decode). It never asserts on speed.

The defaults (4 steps, median of 2) keep the run to about 3 minutes on 2 idle cores. With 4 steps the
share of sampler iterations that run MIS is close to a 50-step render's (PLMS: 2 of 5 iterations at
mis 0.36, vs 19 of 51), and the speed-up depends on that share rather than on the step count; pass
`--steps 50` for the real schedule and `--repeats 5` for steadier figures on a busy machine.

Run:
    .venv/bin/python benchmarks/mis_batching.py                 # size small, 4 steps, median of 2
    .venv/bin/python benchmarks/mis_batching.py --repeats 5 --threads 2
    .venv/bin/python benchmarks/mis_batching.py --size medium                 # several times slower
    .venv/bin/python benchmarks/mis_batching.py --instances 3 8 16 --mis 0.36 0.5 1.0
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
    median,
    relative_l2,
    table,
    timed,
)
from benchmarks.common import build_pipeline as build_bench_pipeline
from engine.pipeline import InstanceDiffusionPipeline, PipelineOutput
from engine.request import MAX_INSTANCES, InstanceKind, InstanceSpec, RenderRequest, Scheduler
from engine.schedulers import make_scheduler, sampler_step

GUIDANCE = 7.5
TOLERANCE = 1e-5  # relative L2 between the two paths' latents
LOOPED_MAX_BATCH = 2  # one chain (uncond + cond rows) per UNet call


@dataclass(frozen=True)
class Case:
    instances: int
    mis: float


@dataclass
class Result:
    case: Case
    mis_steps: int
    calls_batched: int
    calls_looped: int
    rows: int
    batched: list[float]
    looped: list[float]
    rel_l2: float

    @property
    def speedup(self) -> float:
        return median(self.looped) / median(self.batched)


def make_request(case: Case, steps: int, seed: int, side: int) -> RenderRequest:
    instances = tuple(
        InstanceSpec(CAPTIONS[i % len(CAPTIONS)], InstanceKind.BOX, box=BOXES[i % len(BOXES)])
        for i in range(case.instances)
    )
    return RenderRequest(
        prompt="a still life on a kitchen table",
        width=side,
        height=side,
        seed=seed,
        steps=steps,
        guidance=GUIDANCE,
        mis=case.mis,
        scheduler=Scheduler.PLMS,
        instances=instances,
    )


def unet_work(request: RenderRequest) -> tuple[int, int, int]:
    """(UNet calls batched, UNet calls one chain at a time, UNet rows) of a render, counted as the sampler does."""
    scheduler = make_scheduler(request.scheduler)
    scheduler.set_timesteps(request.steps)
    iterations = len(scheduler.timesteps)
    mis_steps = int(request.mis * request.steps) if request.instances else 0
    calls_looped = rows = 0
    for iteration in range(iterations):
        chains = 1 + len(request.instances) if sampler_step(iteration, iterations, request.steps) < mis_steps else 1
        calls_looped += chains
        rows += 2 * chains  # CFG: an unconditional and a conditional row per chain
    return iterations, calls_looped, rows


def render(pipe: InstanceDiffusionPipeline, request: RenderRequest, max_batch: int | None) -> PipelineOutput:
    pipe.clear_text_caches()  # every render encodes its text, so no path profits from the other's cache
    return pipe.render(request, max_batch=max_batch)


def run(args: argparse.Namespace) -> list[Result]:
    size = SIZES[args.size]
    pipe = build_bench_pipeline(size, seed=0)
    cases = [Case(n, mis) for n in args.instances for mis in args.mis]
    # Warm up once (lazy imports, allocator, oneDNN primitives): a short grounded MIS render on each path.
    warm = make_request(Case(1, 1.0), 2, args.seed, size.image_side)
    render(pipe, warm, None)
    render(pipe, warm, LOOPED_MAX_BATCH)

    results: list[Result] = []
    for case in cases:
        request = make_request(case, args.steps, args.seed, size.image_side)
        calls_batched, calls_looped, rows = unet_work(request)
        result = Result(case, int(case.mis * args.steps), calls_batched, calls_looped, rows, [], [], 0.0)
        for repeat in range(args.repeats):
            # Alternate which path goes first, so a drift in machine speed does not favour one.
            order = (None, LOOPED_MAX_BATCH) if repeat % 2 == 0 else (LOOPED_MAX_BATCH, None)
            latents: dict[int | None, torch.Tensor] = {}
            for max_batch in order:
                seconds, output = timed(partial(render, pipe, request, max_batch))
                (result.batched if max_batch is None else result.looped).append(seconds)
                latents[max_batch] = output.latents
            result.rel_l2 = max(result.rel_l2, relative_l2(latents[None], latents[LOOPED_MAX_BATCH]))
        print(
            f"  {case.instances} instances, mis {case.mis:.2f}: batched {median(result.batched):.2f} s, "
            f"one chain at a time {median(result.looped):.2f} s",
            flush=True,
        )
        results.append(result)
    return results


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def report(results: Sequence[Result]) -> bool:
    headers = [
        "instances",
        "mis",
        "MIS steps",
        "UNet calls (batched/looped)",
        "UNet rows",
        "batched s",
        "one-at-a-time s",
        "speed-up",
        "rel. L2",
        "same latents",
    ]
    rows = [
        [
            str(r.case.instances),
            f"{r.case.mis:.2f}",
            str(r.mis_steps),
            f"{r.calls_batched}/{r.calls_looped}",
            str(r.rows),
            f"{median(r.batched):.2f}",
            f"{median(r.looped):.2f}",
            f"{r.speedup:.2f}x",
            f"{r.rel_l2:.1e}",
            "yes" if r.rel_l2 < TOLERANCE else "NO",
        ]
        for r in results
    ]
    print(table(headers, rows))
    speedups = [r.speedup for r in results]
    # Other load only ever adds time, so the fastest runs are a second, less noisy estimate.
    fastest = [min(r.looped) / min(r.batched) for r in results]
    print()
    print(
        f"speed-up (one chain at a time / batched): {min(speedups):.2f}x to {max(speedups):.2f}x by median, "
        f"geometric mean {geometric_mean(speedups):.2f}x ({geometric_mean(fastest):.2f}x by fastest runs)"
    )
    same = all(r.rel_l2 < TOLERANCE for r in results)
    worst = max(r.rel_l2 for r in results)
    verdict = "yes" if same else "NO"
    print(f"same latents on both paths (relative L2 < {TOLERANCE:g}): {verdict} (worst {worst:.1e})")
    return same


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_common_args(parser, steps=4, repeats=2)
    parser.add_argument("--instances", type=int, nargs="+", default=[3, 8], help="box instance counts (default: 3 8)")
    parser.add_argument("--mis", type=float, nargs="+", default=[0.36, 1.0], help="mis values (default: 0.36 1.0)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")
    if not all(1 <= n <= MAX_INSTANCES for n in args.instances):
        parser.error(f"--instances must be between 1 and {MAX_INSTANCES}")
    if not all(0.0 < m <= 1.0 for m in args.mis):
        parser.error("--mis values must be in (0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    size = SIZES[args.size]
    print("MIS batching: all chains of a step in one UNet call vs one chain at a time (max_batch=2)")
    print(f"{size.describe()}; PLMS, {args.steps} steps, guidance {GUIDANCE:g}, whole render timed")
    print(f"{environment(args)}; median of {args.repeats} run(s) per path after one warm-up")
    start = time.perf_counter()
    results = run(args)
    print()
    same = report(results)
    print(f"total time {time.perf_counter() - start:.0f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
