"""The samplers a request can name, all on SD1.5's training schedule (scaled_linear 0.00085 -> 0.012).

PLMS is diffusers' PNDMScheduler with PRK steps skipped: it reproduces the official LDM PLMS sampler,
first step's second evaluation included (spec §2.4). That extra evaluation is why a PLMS run has one
more iteration than steps; `sampler_step` maps an iteration back to the step the alpha and mis
schedules count in, and `completes_step` says which iteration finishes a step (what progress counts).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_dpmsolver_multistep import DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_pndm import PNDMScheduler

from engine.request import Scheduler

SD15_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}


class StepOutput(Protocol):
    prev_sample: torch.Tensor


class DiffusionScheduler(Protocol):
    """What the sampler uses of a diffusers scheduler (SchedulerMixin declares none of it)."""

    timesteps: torch.Tensor
    init_noise_sigma: float

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None: ...

    def scale_model_input(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor: ...

    def step(self, model_output: torch.Tensor, timestep: torch.Tensor, sample: torch.Tensor) -> StepOutput: ...


def make_scheduler(kind: Scheduler) -> DiffusionScheduler:
    if kind is Scheduler.PLMS:
        scheduler: object = PNDMScheduler(**SD15_SCHEDULE, skip_prk_steps=True, set_alpha_to_one=False)
    elif kind is Scheduler.DDIM:
        scheduler = DDIMScheduler(**SD15_SCHEDULE, clip_sample=False, set_alpha_to_one=False)
    elif kind is Scheduler.DPM_SOLVER_PP:
        scheduler = DPMSolverMultistepScheduler(**SD15_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2)
    else:
        raise ValueError(f"unknown scheduler {kind!r}")
    return cast(DiffusionScheduler, scheduler)


def sampler_step(iteration: int, iterations: int, steps: int) -> int:
    """The sampler step (0..steps-1) that scheduler iteration `iteration` belongs to."""
    return max(iteration - (iterations - steps), 0)


def completes_step(iteration: int, iterations: int, steps: int) -> bool:
    """Whether iteration `iteration` is the last of its step: PLMS's extra first evaluation is not a step."""
    if iteration >= iterations - 1:
        return True
    return sampler_step(iteration + 1, iterations, steps) != sampler_step(iteration, iterations, steps)
