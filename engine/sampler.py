"""The InstanceDiffusion sampling loop on tensors: CFG with null grounding, the alpha schedule, and the
multi-instance sampler with every chain of a step in one batched UNet call (spec §2).

Chains: chain 0 is the full condition (global prompt, all instances); chain k is instance k-1 alone in
slot 0 with its caption as the prompt. All start from the same noise; each has its own scheduler
history. For the first `int(mis * steps)` steps every chain runs; then their latents are averaged and
chain 0 continues alone with its own history. Grounding (the fusers) is on for the first
`int(alpha * steps)` steps. Unconditional rows use the negative prompt and null grounding.

Text encoding, layouts and decoding live in `engine.pipeline`; this module knows only tensors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.models.fusers import RegionTokens
from engine.schedulers import DiffusionScheduler, completes_step, sampler_step


class RenderCancelled(Exception):
    """Raised from inside the loop when the caller cancels; no image is produced."""


@dataclass(frozen=True)
class Chain:
    """One chain's conditioning: its prompt context (1, 77, D) and grounding tokens (1, T, D), or None
    for a render without instances (then the fusers never run: it is plain Stable Diffusion). A model with
    instance-masked fusers also needs each slot's region on the latent grid, (1, slots, h, w)."""

    context: torch.Tensor
    tokens: torch.Tensor | None
    regions: torch.Tensor | None = None


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 50
    guidance: float = 7.5
    alpha: float = 0.75
    mis: float = 0.36

    @property
    def grounded_steps(self) -> int:
        return int(self.alpha * self.steps)

    @property
    def mis_steps(self) -> int:
        return int(self.mis * self.steps)


@dataclass(frozen=True)
class UNetCall:
    """What one batched UNet call computed, for tests and diagnostics: one entry per batch row."""

    iteration: int
    step: int
    timestep: int
    grounded: bool
    chains: tuple[int, ...]  # chain index of each row
    conditional: tuple[bool, ...]
    sample: torch.Tensor  # the rows' input latents
    output: torch.Tensor  # the rows' raw UNet output


StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class SamplerHooks:
    # (steps done, steps, chain-0 latents) after each of the user's steps, 1..steps: PLMS's extra first
    # evaluation is part of step 1, not a step of its own.
    on_step: StepCallback | None = None
    should_cancel: Callable[[], bool] | None = None  # checked before every UNet call and each block inside it
    on_unet_call: Callable[[UNetCall], None] | None = None
    max_batch: int | None = None  # split a step's rows into UNet calls of at most this many
    merged: list[torch.Tensor] = field(default_factory=list)  # filled with the pre-merge latents, if MIS ran


def sample(
    unet: UNet2DConditionModel,
    scheduler: DiffusionScheduler,
    noise: torch.Tensor,
    full: Chain,
    instance_chains: Sequence[Chain],
    uncond_context: torch.Tensor,
    null_tokens: torch.Tensor,
    settings: SamplerSettings,
    hooks: SamplerHooks | None = None,
    known: Sequence[torch.Tensor | None] = (),
) -> torch.Tensor:
    """Denoise `noise` (1, C, h, w) and return the final latents of chain 0.

    `known[k]`, where given, is instance chain k's latents at the merge point from an earlier render of
    the same chain (see `engine.chain_cache`): that chain is not run, and its latents join the merge.
    """
    hooks = hooks or SamplerHooks()
    scheduler.set_timesteps(settings.steps, device=noise.device)
    timesteps = scheduler.timesteps
    iterations = len(timesteps)
    mis_steps = settings.mis_steps if instance_chains else 0
    chains = [full, *instance_chains] if mis_steps > 0 else [full]
    given = [None, *known, *[None] * (len(instance_chains) - len(known))] if mis_steps > 0 else [None]
    # Chains still to run, by index into `chains`; the known ones wait for the merge.
    running = [index for index, latent in enumerate(given) if latent is None]
    schedulers = {c: copy.deepcopy(scheduler) for c in running}
    latents = dict.fromkeys(running, noise * schedulers[0].init_noise_sigma)
    use_cfg = settings.guidance != 1.0
    has_grounding = full.tokens is not None
    # Unconditional rows: no instance anywhere, so only the caption-free tokens are visible.
    null_regions = None if full.regions is None else torch.zeros_like(full.regions)

    for iteration, t in enumerate(timesteps):
        step = sampler_step(iteration, iterations, settings.steps)
        if len(chains) > 1 and step >= mis_steps:
            # Multi-instance sampler: average every chain, continue with chain 0's own history.
            merging = [latents[c] if given[c] is None else _known(given[c], latents[0]) for c in range(len(chains))]
            hooks.merged.extend(merging)
            latents = {0: torch.stack(merging).mean(0)}
            chains, schedulers, running = chains[:1], {0: schedulers[0]}, [0]
        # No instances: plain Stable Diffusion (the fusers would only see null tokens).
        grounded = has_grounding and step < settings.grounded_steps

        rows_chain: list[int] = []
        rows_cond: list[bool] = []
        for index in running:
            if use_cfg:
                rows_chain.append(index)
                rows_cond.append(False)
            rows_chain.append(index)
            rows_cond.append(True)
        inputs = torch.cat([schedulers[c].scale_model_input(latents[c], t) for c in rows_chain])
        context = torch.cat(
            [chains[c].context if cond else uncond_context for c, cond in zip(rows_chain, rows_cond, strict=True)]
        )
        tokens: torch.Tensor | RegionTokens | None = None
        if grounded:
            batch_rows = list(zip(rows_chain, rows_cond, strict=True))
            tokens = torch.cat([_tokens_of(chains[c]) if cond else null_tokens for c, cond in batch_rows])
            if null_regions is not None:
                regions = torch.cat([_regions_of(chains[c]) if cond else null_regions for c, cond in batch_rows])
                tokens = RegionTokens(tokens, regions)
        output = _unet(unet, inputs, t, context, tokens, hooks)
        if hooks.on_unet_call is not None:
            hooks.on_unet_call(
                UNetCall(iteration, step, int(t), grounded, tuple(rows_chain), tuple(rows_cond), inputs, output)
            )

        for index in running:
            rows = [r for r, c in enumerate(rows_chain) if c == index]
            if use_cfg:
                uncond, cond = output[rows[0] : rows[0] + 1], output[rows[1] : rows[1] + 1]
                eps = uncond + settings.guidance * (cond - uncond)
            else:
                eps = output[rows[0] : rows[0] + 1]
            latents[index] = schedulers[index].step(eps, t, latents[index]).prev_sample
        if hooks.on_step is not None and completes_step(iteration, iterations, settings.steps):
            hooks.on_step(step + 1, settings.steps, latents[0])
    return latents[0]


def _unet(
    unet: UNet2DConditionModel,
    inputs: torch.Tensor,
    t: torch.Tensor,
    context: torch.Tensor,
    tokens: torch.Tensor | RegionTokens | None,
    hooks: SamplerHooks,
) -> torch.Tensor:
    """One step's rows through the UNet, in chunks of at most `max_batch` rows; cancellable before every
    chunk and inside it, between its blocks."""
    size = hooks.max_batch or inputs.shape[0]
    outputs = []
    for start in range(0, inputs.shape[0], size):
        check_cancel(hooks.should_cancel)
        part = slice(start, start + size)
        kwargs: Mapping[str, object] | None = None if tokens is None else {"gligen": {"objs": tokens[part]}}
        with cancellable(unet, hooks.should_cancel):
            outputs.append(
                unet(inputs[part], t, encoder_hidden_states=context[part], cross_attention_kwargs=kwargs).sample
            )
    return torch.cat(outputs)


def check_cancel(should_cancel: Callable[[], bool] | None) -> None:
    if should_cancel is not None and should_cancel():
        raise RenderCancelled


@contextmanager
def cancellable(model: torch.nn.Module, should_cancel: Callable[[], bool] | None) -> Iterator[None]:
    """Check `should_cancel` before each block of `model` (a UNet, a VAE decoder) and each ResNet and attention
    module in them: one SD1.5 UNet call on a CPU takes seconds, so a cancel must not wait for its end.
    The checks read nothing and change nothing, so the result is bit-identical."""
    if should_cancel is None:
        yield
        return

    def check(_module: torch.nn.Module, _args: object) -> None:
        check_cancel(should_cancel)

    handles = [part.register_forward_pre_hook(check) for part in _cancel_points(model)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _cancel_points(model: torch.nn.Module) -> list[torch.nn.Module]:
    blocks = [*getattr(model, "down_blocks", ()), *getattr(model, "up_blocks", ())]
    mid = getattr(model, "mid_block", None)
    if isinstance(mid, torch.nn.Module):
        blocks.append(mid)
    points: list[torch.nn.Module] = []
    for block in blocks:
        points.append(block)
        for name in ("resnets", "attentions"):
            points.extend(m for m in getattr(block, name, None) or () if isinstance(m, torch.nn.Module))
    return points


def _known(latents: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if latents is None or latents.shape != like.shape:
        raise ValueError("a known chain's latents must have the shape of this render's latents")
    return latents.to(like.device, like.dtype)


def _tokens_of(chain: Chain) -> torch.Tensor:
    if chain.tokens is None:
        raise ValueError("a grounded step needs every chain's tokens")
    return chain.tokens


def _regions_of(chain: Chain) -> torch.Tensor:
    if chain.regions is None:
        raise ValueError("a model with instance-masked fusers needs every chain's regions")
    return chain.regions
