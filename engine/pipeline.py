"""InstanceDiffusionPipeline: Stable Diffusion 1.5 with InstanceDiffusion's instance-level control, as a
diffusers `DiffusionPipeline`.

Components `vae`, `text_encoder`, `tokenizer`, `unet` (an `InstanceUNet2DConditionModel`) and `scheduler`:
`save_pretrained(folder)` writes one folder (model_index.json and a folder per component) and
`InstanceDiffusionPipeline.from_pretrained(folder, local_files_only=True)` reads it back offline. Two ways in:

- `pipe(prompt=..., instances=[...], height=..., width=..., num_inference_steps=..., generator=...)`, the
  keyword arguments diffusers users know, returning an `InstanceDiffusionPipelineOutput` (`.images`);
- `pipe.render(request, ...)`, what the app calls with a `RenderRequest`, returning a `PipelineOutput`
  (with progress previews, cancellation, batch limits and the chain cache).

Both run the same steps, written in diffusers' shape around the tensor-level sampler in `engine.sampler`:

1. check the request against the model;
2. encode the prompt, the negative prompt and the instance captions (cached by text);
3. turn the layout into grounding tokens: the full condition, one chain per instance, the null input; the
   location kinds dropped are an argument of each call, not model state;
4. draw the noise: from the seed (or the caller's generator) and the canvas size only, in fp32, so
   editing the layout never changes it;
5. sample;
6. decode with the VAE (retried once in fp32 if the output is not finite).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import PIL.Image
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.utils.outputs import BaseOutput
from transformers import CLIPTextModel, CLIPTokenizer

from engine.chain_cache import ChainCache, chain_key, shared_digest
from engine.geometry import MaskRLE
from engine.grounding import instance_tensors, null_grounding, slot_grounding
from engine.models.builder import position_net_of
from engine.models.fusers import fuser_config_of
from engine.models.unifusion import OFFICIAL_DROPS, GroundingDrops
from engine.own_memory import own_memory
from engine.regions import slot_regions
from engine.request import MAX_SEED, InstanceKind, InstanceSpec, RenderRequest, Scheduler
from engine.sampler import Chain, RenderCancelled, SamplerHooks, SamplerSettings, cancellable, check_cancel, sample
from engine.schedulers import DiffusionScheduler, make_scheduler
from engine.text_cache import TextCache

__all__ = [
    "InstanceDiffusionPipeline",
    "InstanceDiffusionPipelineOutput",
    "NonFiniteOutputError",
    "PipelineOutput",
    "RenderCancelled",
]

# (steps done, the request's steps, preview as an (h, w, 3) uint8 array or None): 1..steps, whatever the scheduler
ProgressCallback = Callable[[int, int, "npt.NDArray[np.uint8] | None"], None]

# Approximate linear map from SD1.5 latents to RGB, for cheap previews without the VAE (see `preview`).
SD15_PREVIEW_FACTORS = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)


# Previews: a VAE whose decoder is at most this big (the demo model's has 0.6 M parameters, SD1.5's 49 M)
# decodes them; a bigger one is approximated. An approximation is at most this many pixels on a side.
PREVIEW_DECODE_MAX_PARAMETERS = 5_000_000
PREVIEW_MAX_SIDE = 256


class NonFiniteOutputError(RuntimeError):
    """The render produced NaN or inf; no image is returned (a black image is never saved)."""


@dataclass
class PipelineOutput:
    image: npt.NDArray[np.uint8]  # (H, W, 3)
    latents: torch.Tensor
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # fallbacks taken, e.g. "vae decoded in fp32"
    reused: tuple[int, ...] = ()  # instances (0-based) whose chains came from the chain cache


@dataclass
class InstanceDiffusionPipelineOutput(BaseOutput):
    """What `InstanceDiffusionPipeline.__call__` returns.

    images: a list of PIL images ("pil"), an (N, H, W, 3) float array in [0, 1] ("np"), an (N, 3, H, W)
        tensor in [0, 1] ("pt"), or the latents themselves ("latent").
    latents: the final latents, (N, C, H / 8, W / 8).
    """

    images: list[PIL.Image.Image] | npt.NDArray[np.float32] | torch.Tensor
    latents: torch.Tensor


OutputType = Literal["pil", "np", "pt", "latent"]
# diffusers' step-end callback: (pipeline, step index, timestep, {"latents": ...}) -> dict.
StepEndCallback = Callable[["InstanceDiffusionPipeline", int, int, dict[str, torch.Tensor]], object]
# diffusers' older per-step callback: (step index, timestep, latents).
LegacyCallback = Callable[[int, int, torch.Tensor], object]


def grounding_drops(instances: Sequence[InstanceSpec]) -> GroundingDrops:
    """The drop flags a layout is rendered with: those of the official config that fits its location kinds."""
    return OFFICIAL_DROPS[grounding_config(instances)] if instances else GroundingDrops()


def grounding_config(instances: Sequence[InstanceSpec]) -> str:
    """Which official test config (drop flags) fits the location kinds in a layout."""
    kinds = {inst.kind for inst in instances}
    if InstanceKind.SCRIBBLE in kinds:
        return "scribble"
    if InstanceKind.MASK in kinds:
        return "mask"
    if InstanceKind.BOX in kinds:
        return "box"
    return "point"


class InstanceDiffusionPipeline(DiffusionPipeline):
    """Stable Diffusion 1.5 with InstanceDiffusion's instance-level control.

    Args:
        vae ([`AutoencoderKL`]): decodes latents to images.
        text_encoder ([`CLIPTextModel`]): encodes the prompt (last hidden state) and the instance
            captions (pooled output, before the projection, as the official model).
        tokenizer ([`CLIPTokenizer`]): pads and truncates to 77 tokens.
        unet ([`InstanceUNet2DConditionModel`]): built by `engine.models.builder.build_instance_unet`.
        preview_factors: a (latent channels x 3) matrix mapping latents to RGB for previews that do not decode.
        scheduler: the sampler's training schedule (its class and betas); None: the PLMS sampler of the
            official code on SD1.5's schedule. A render's own sampler choice (`Scheduler`) is built from it.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"  # type: ignore[assignment]  # diffusers types it None
    # A folder without a scheduler still loads (the official PLMS one is used).
    _optional_components = ["scheduler"]  # noqa: RUF012 - diffusers' class attribute, a list by convention
    _exclude_from_cpu_offload: list[str] = []  # noqa: RUF012 - every model may move off the accelerator

    # Declared for type checkers: diffusers' `register_modules` sets them.
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    unet: UNet2DConditionModel  # an InstanceUNet2DConditionModel (or one built like it)
    scheduler: Any

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        preview_factors: Sequence[Sequence[float]] | None = SD15_PREVIEW_FACTORS,
        *,
        scheduler: Any = None,
    ) -> None:
        super().__init__()
        if scheduler is None:
            scheduler = make_scheduler(Scheduler.PLMS)
        for model in (vae, text_encoder, unet):  # however they were loaded: the same output (engine.own_memory)
            own_memory(model)
        self.register_modules(  # type: ignore[no-untyped-call]
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler
        )
        factors = None if preview_factors is None else [[float(v) for v in row] for row in preview_factors]
        self.register_to_config(preview_factors=factors)  # type: ignore[no-untyped-call]  # saved in model_index.json
        self.preview_matrix = None if factors is None else torch.tensor(factors, dtype=torch.float32)
        self.preview_decodes = vae_parameters(vae) <= PREVIEW_DECODE_MAX_PARAMETERS  # see `preview`
        self._prompt_cache = TextCache()
        self._pooled_cache = TextCache()
        # Instance chains kept between renders; `identity` names the weights (the runner sets it from the
        # model's hashes) so that a key never matches across models.
        self.chain_cache = ChainCache()
        self.identity = ""

    @property
    def position_net(self) -> Any:
        return position_net_of(self.unet)

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's dtype: what the sampler computes in (the text encoder or VAE may differ while offloaded)."""
        return next(self.unet.parameters()).dtype

    @property
    def execution_device(self) -> torch.device:
        """Where the UNet computes: its device, or the accelerator an offload hook moves it to. (`device`, as in
        diffusers, is where the components are placed; with CPU offload they wait on the CPU.)"""
        return torch.device(self._execution_device)

    @property
    def vae_scale_factor(self) -> int:
        return int(2 ** (len(self.vae.config["block_out_channels"]) - 1))

    @property
    def canvas_multiple(self) -> int:
        """Canvas sides must be multiples of this: the VAE's factor times the UNet's downsampling."""
        return self.vae_scale_factor * int(2 ** (len(self.unet.config["block_out_channels"]) - 1))

    def clear_text_caches(self) -> None:
        """Forget cached text encodings (after the text encoder's weights change, e.g. another LoRA set)."""
        self._prompt_cache.clear()
        self._pooled_cache.clear()

    def clear_caches(self) -> None:
        """Forget cached text encodings and instance chains (after changing the text encoder's or UNet's weights)."""
        self.clear_text_caches()
        self.chain_cache.clear()

    # Memory

    def enable_vae_tiling(self) -> None:
        """Decode in overlapping tiles: less memory for large images (the result differs slightly at the seams)."""
        self.vae.enable_tiling()  # type: ignore[no-untyped-call]  # diffusers leaves these unannotated

    def disable_vae_tiling(self) -> None:
        self.vae.disable_tiling()  # type: ignore[no-untyped-call]

    def enable_low_memory(self) -> list[str]:
        """Render with less accelerator memory, for small GPUs: models offloaded to the CPU between uses
        (diffusers' `enable_model_cpu_offload`, which needs `accelerate`) and a tiled VAE decode.

        Only on an accelerator: on the CPU the weights already live in RAM and tiling would only change the
        image, so nothing is done. Returns what was switched on (empty when nothing was)."""
        device = self.execution_device
        if device.type == "cpu":
            return []
        done = []
        try:
            self.enable_model_cpu_offload(device=device)
            done.append("models offloaded to the CPU between uses")
        except ImportError:
            pass  # no accelerate: the runner's ladder still moves the text encoder and VAE off by hand
        self.enable_vae_tiling()
        done.append("a tiled VAE decode")
        return done

    # 1. Check inputs

    def check_inputs(self, request: RenderRequest) -> None:
        multiple = self.canvas_multiple
        for name, side in (("width", request.width), ("height", request.height)):
            if side % multiple:
                raise ValueError(f"{name} {side} must be a multiple of {multiple} for this model")
        slots = self.position_net.config.max_objs
        if len(request.instances) > slots:
            raise ValueError(f"{len(request.instances)} instances; this model has {slots} slots")

    # 2. Encode text

    def encode_prompt(self, texts: Sequence[str]) -> torch.Tensor:
        """(N, 77, D) last hidden states; each text is encoded once while it stays in the cache."""
        encoded = self._prompt_cache.get_many(texts, lambda missing: self._encode(missing, pad_to_max=True)[0])
        return encoded.to(self.execution_device, self.dtype)

    def encode_instance_captions(self, captions: Sequence[str]) -> torch.Tensor:
        """(N, D) CLIP pooled outputs (the EOS token after the final norm, before the projection)."""
        device = self.execution_device
        if not captions:
            return torch.zeros(0, self.position_net.config.text_dim, device=device, dtype=self.dtype)
        # The official code tokenises each caption alone: pooling reads the EOS token, so padding would not
        # change it, but one at a time keeps each feature independent of what it was batched with.
        encoded = self._pooled_cache.get_many(
            captions, lambda missing: torch.cat([self._encode([c], pad_to_max=False)[1] for c in missing])
        )
        return encoded.to(device, self.dtype)

    def _encode(self, texts: list[str], pad_to_max: bool) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(
            texts,
            padding="max_length" if pad_to_max else True,
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        output = self.text_encoder(tokens.input_ids.to(self.text_encoder.device))
        # The text encoder may live elsewhere (offloaded to the CPU): results go where the UNet computes.
        device = self.execution_device
        hidden = output.last_hidden_state.to(device, self.dtype)
        return hidden, output.pooler_output.to(device, self.dtype)

    # 3. Grounding

    def grounding_tokens(
        self, instances: Sequence[InstanceSpec]
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Tokens for the full condition, for each instance alone (in slot 0), and the null input."""
        net = self.position_net
        config = net.config
        drops = grounding_drops(instances)  # this call's choice: nothing is stored on the model
        texts = self.encode_instance_captions([inst.caption for inst in instances])
        self._onload_unet()
        tensors = [instance_tensors(inst, text, config) for inst, text in zip(instances, texts, strict=True)]
        full = net(**slot_grounding(tensors, config), drops=drops)
        alone = [net(**slot_grounding([t], config), drops=drops) for t in tensors]
        null = net(**null_grounding(config, self.dtype, self.execution_device), drops=drops)
        return full, alone, null

    def _onload_unet(self) -> None:
        """With model CPU offload the UNet moves to the accelerator only when it is called; its position net
        runs first, on its own, so bring the UNet over now (as its first call would)."""
        hook = getattr(self.unet, "_hf_hook", None)
        if hook is not None and type(hook).__name__ == "CpuOffload":
            hook.pre_forward(self.unet)

    def grounding_regions(
        self, instances: Sequence[InstanceSpec], height: int, width: int
    ) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
        """Slot regions on the latent grid for the full condition and each instance alone, for a model whose
        fusers attend by instance region; None for any other model (the official one)."""
        fuser_config = fuser_config_of(self.unet)
        if not fuser_config.masked_attention:
            return None
        factor = self.vae_scale_factor
        slots = self.position_net.config.max_objs
        full = slot_regions(instances, slots, height // factor, width // factor, fuser_config)
        full = full.to(self.execution_device, self.dtype)
        alone = []
        for slot in range(len(instances)):  # instance k alone sits in slot 0, with the region it has in the full chain
            region = torch.zeros_like(full)
            region[:, 0] = full[:, slot]
            alone.append(region)
        return full, alone

    # 4. Noise

    def prepare_latents(self, request: RenderRequest, generator: torch.Generator | None = None) -> torch.Tensor:
        """The starting noise: a function of the seed and the canvas size only (fp32, CPU generator). A caller's
        `generator` replaces the seed and is drawn from the same way (fp32, on the generator's device)."""
        factor = self.vae_scale_factor
        shape = (1, self.unet.config["in_channels"], request.height // factor, request.width // factor)
        if generator is None:
            generator = torch.Generator("cpu").manual_seed(request.seed)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32, device=generator.device)
        return noise.to(self.execution_device, self.dtype)

    def request_scheduler(self, kind: Scheduler) -> DiffusionScheduler:
        """A fresh scheduler of the request's kind on the `scheduler` component's training schedule (betas,
        timestep count and offset, prediction type); the kind's own settings (PLMS without PRK steps, ...)
        come from `make_scheduler`. A fresh one per render: the component is never stepped."""
        chosen = make_scheduler(kind)
        component = getattr(self.scheduler, "config", None) or {}
        schedule = {key: component[key] for key in TRAINING_SCHEDULE_KEYS if key in component}
        config = {**dict(chosen.config), **schedule}  # type: ignore[attr-defined]
        rebuilt: DiffusionScheduler = type(chosen).from_config(config)  # type: ignore[attr-defined]
        return rebuilt

    # The whole render, from diffusers-style arguments

    @torch.no_grad()
    def __call__(
        self,
        prompt: str = "",
        negative_prompt: str = "",
        instances: Sequence[InstanceSpec | Mapping[str, Any]] = (),
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.5,
        alpha: float = 0.75,
        mis: float = 0.36,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        output_type: OutputType = "pil",
        return_dict: bool = True,
        callback_on_step_end: StepEndCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        callback: LegacyCallback | None = None,
        callback_steps: int = 1,
        scheduler: Scheduler | str = Scheduler.PLMS,
    ) -> InstanceDiffusionPipelineOutput | tuple[Any, torch.Tensor]:
        """Render one image.

        Args:
            prompt / negative_prompt: the global prompt and what to steer away from.
            instances: `engine.request.InstanceSpec`s, or dicts with a `caption` and a location: `box`
                [x0, y0, x1, y1], `point` [x, y], `scribble` [[x, y], ...], `polygon` [[x, y], ...] (all
                normalised to [0, 1], y down) or `mask` (an (H, W) array, nonzero inside); `kind` defaults to
                the richest location given (scribble, mask, box, point).
            height / width: pixels (default: the UNet's sample size times the VAE's factor).
            num_inference_steps, guidance_scale: as in diffusers.
            alpha: grounding is on for the first `int(alpha * steps)` steps.
            mis: the multi-instance sampler runs for the first `int(mis * steps)` steps.
            generator / seed: the noise (fp32, drawn on the generator's device). `seed=s` equals
                `generator=torch.Generator().manual_seed(s)`; neither draws a random seed.
            output_type: "pil", "np" (float in [0, 1]), "pt" or "latent".
            callback_on_step_end: called after every step as diffusers does, with {"latents": ...}; what it
                returns is not fed back (the multi-instance sampler keeps several latents per step).
            callback / callback_steps: diffusers' older callback, (step, timestep, latents).
            scheduler: "plms" (the official sampler), "ddim" or "dpmsolver++".

        Returns an `InstanceDiffusionPipelineOutput` (or `(images, latents)` when `return_dict` is False).
        Bad arguments raise `RequestValidationError` (every problem, one line each) or `ValueError`.
        """
        unknown = set(callback_on_step_end_tensor_inputs) - {"latents"}
        if unknown:
            raise ValueError(f"callback_on_step_end_tensor_inputs may only name 'latents', not {sorted(unknown)}")
        factor = self.vae_scale_factor
        default_side = int(self.unet.config["sample_size"]) * factor
        if seed is None and generator is None:
            seed = random.randrange(MAX_SEED)
        request = RenderRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            width=default_side if width is None else width,
            height=default_side if height is None else height,
            seed=0 if seed is None else seed,
            steps=num_inference_steps,
            guidance=guidance_scale,
            alpha=alpha,
            mis=mis,
            scheduler=Scheduler(scheduler),
            instances=tuple(instance_spec(item, index) for index, item in enumerate(instances)),
        )
        timesteps = self._timesteps(request.scheduler, num_inference_steps)

        def on_step(done: int, total: int, latents: torch.Tensor) -> None:
            index = done - 1
            t = timesteps[index]
            if callback_on_step_end is not None:
                callback_on_step_end(self, index, t, {"latents": latents})
            if callback is not None and done % max(1, callback_steps) == 0:
                callback(index, t, latents)

        noise = self.prepare_latents(request, generator)
        hooks = SamplerHooks(on_step=on_step)
        latents, _known, _timings = self._sample(request, noise, hooks, reuse_chains=False)
        images: Any
        if output_type == "latent":
            images = latents
        else:
            pixels = self.decode(latents)
            if output_type == "pt":
                images = pixels
            else:
                array = pixels.permute(0, 2, 3, 1).cpu().float().numpy()
                images = array if output_type == "np" else self.numpy_to_pil(array)  # type: ignore[no-untyped-call]
        self.maybe_free_model_hooks()  # type: ignore[no-untyped-call]
        if not return_dict:
            return images, latents
        return InstanceDiffusionPipelineOutput(images=images, latents=latents)

    def _timesteps(self, kind: Scheduler, steps: int) -> list[int]:
        """The timestep each of the user's steps ends on (PLMS's extra first evaluation belongs to step 1)."""
        scheduler = self.request_scheduler(kind)
        scheduler.set_timesteps(steps)
        values = [int(t) for t in scheduler.timesteps]
        return values[len(values) - steps :]

    # The whole render, from a RenderRequest (the app)

    @torch.no_grad()
    def render(
        self,
        request: RenderRequest,
        *,
        callback: ProgressCallback | None = None,
        preview_every: int = 0,
        should_cancel: Callable[[], bool] | None = None,
        max_batch: int | None = None,
        reuse_chains: bool = False,
    ) -> PipelineOutput:
        """Render `request`. Raises `RenderCancelled` when `should_cancel` turns true (no image is made): it is
        checked before every UNet call and between the blocks inside one, and before and during the decode.

        Args:
            callback: called after every step with (done, steps, preview): done runs 1..request.steps.
            preview_every: build a preview every this many steps (0: never).
            max_batch: at most this many rows per UNet call (lower it to save memory).
            reuse_chains: take unchanged instance chains from `chain_cache` and keep new ones there. The
                result equals a render without it to float rounding (a reused chain was computed in another
                UNet batch), so it is off by default: two plain calls give bit-identical images.
        """

        def on_step(done: int, total: int, latents: torch.Tensor) -> None:
            if callback is not None:
                wants_preview = preview_every > 0 and (done % preview_every == 0 or done == total)
                callback(done, total, self.preview(latents) if wants_preview else None)

        start = time.perf_counter()
        hooks = SamplerHooks(on_step=on_step, should_cancel=should_cancel, max_batch=max_batch)
        self.check_inputs(request)
        check_cancel(should_cancel)  # a cancel during the model's load lands here
        latents, known, timings = self._sample(request, self.prepare_latents(request), hooks, reuse_chains)

        # 6. Decode (cancellable too: at SD1.5 size on a CPU it takes seconds)
        check_cancel(should_cancel)
        decode_start = time.perf_counter()
        notes: list[str] = []
        with cancellable(self.vae.decoder, should_cancel):
            pixels = self.decode(latents, notes)
        self.maybe_free_model_hooks()  # type: ignore[no-untyped-call]
        timings["decode"] = time.perf_counter() - decode_start
        timings["total"] = time.perf_counter() - start
        reused = tuple(index for index, cached in enumerate(known) if cached is not None)
        return PipelineOutput(image=to_uint8(pixels), latents=latents, timings=timings, notes=notes, reused=reused)

    def _sample(
        self, request: RenderRequest, noise: torch.Tensor, hooks: SamplerHooks, reuse_chains: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor | None], dict[str, float]]:
        """Steps 1-5: the final latents, the chains taken from the cache, and timings."""
        timings: dict[str, float] = {}
        start = time.perf_counter()

        # 1. Check inputs
        self.check_inputs(request)

        # 2. Encode prompts
        captions = [inst.caption for inst in request.instances]
        contexts = self.encode_prompt([request.prompt, request.negative_prompt, *captions])
        context, uncond = contexts[:1], contexts[1:2]

        # 3. Grounding tokens
        full_tokens, alone_tokens, null_tokens = self.grounding_tokens(request.instances)
        regions = self.grounding_regions(request.instances, request.height, request.width)
        full_regions, alone_regions = regions if regions is not None else (None, [None] * len(alone_tokens))
        chains = [Chain(contexts[2 + i : 3 + i], tokens, alone_regions[i]) for i, tokens in enumerate(alone_tokens)]
        timings["encode"] = time.perf_counter() - start

        # 4. Noise (drawn by the caller) and 5. Sample
        settings = SamplerSettings(request.steps, request.guidance, request.alpha, request.mis)
        sample_start = time.perf_counter()
        full = Chain(context, full_tokens if request.instances else None, full_regions)
        keys = self._chain_keys(request, settings, noise, uncond, null_tokens, chains) if reuse_chains else []
        known = [self.chain_cache.get(key) for key in keys]
        latents = sample(
            self.unet,
            self.request_scheduler(request.scheduler),
            noise,
            full,
            chains,
            uncond,
            null_tokens,
            settings,
            hooks,
            known=known,
        )
        timings["sample"] = time.perf_counter() - sample_start
        if not torch.isfinite(latents).all():
            raise NonFiniteOutputError("the sampler produced NaN or inf latents")
        for key, cached, merged in zip(keys, known, hooks.merged[1:], strict=False):
            if cached is None and bool(torch.isfinite(merged).all()):  # a NaN chain is never reused
                self.chain_cache.put(key, merged)
        return latents, known, timings

    def _chain_keys(
        self,
        request: RenderRequest,
        settings: SamplerSettings,
        noise: torch.Tensor,
        uncond: torch.Tensor,
        null_tokens: torch.Tensor,
        chains: Sequence[Chain],
    ) -> list[str]:
        """Each instance chain's cache key; none when this render never merges chains (nothing to reuse)."""
        if not chains or not 0 < settings.mis_steps < settings.steps:
            return []
        plain = (settings, request.scheduler.value, self.identity, str(self.execution_device), str(self.dtype))
        shared = shared_digest((noise, uncond, null_tokens), plain)
        return [chain_key(shared, chain.context, chain.tokens, chain.regions) for chain in chains]

    def decode(self, latents: torch.Tensor, notes: list[str] | None = None) -> torch.Tensor:
        """Latents to pixels in [0, 1], (1, 3, H, W) float32. A non-finite decode is retried once in fp32."""
        scaling = float(self.vae.config["scaling_factor"])
        latents = latents.to(self.vae.device)  # the VAE may be offloaded to the CPU
        pixels = self.vae.decode(latents.to(self.vae.dtype) / scaling).sample
        if not torch.isfinite(pixels).all():
            if self.vae.dtype == torch.float32:
                raise NonFiniteOutputError("the VAE produced NaN or inf")
            original = self.vae.dtype
            # nn.Module.to directly: diffusers' wrapped `to` is mistyped and warns needlessly.
            torch.nn.Module.to(self.vae, torch.float32)
            try:
                pixels = self.vae.decode(latents.to(torch.float32) / scaling).sample
            finally:
                torch.nn.Module.to(self.vae, original)
            if notes is not None:
                notes.append("vae decoded in fp32 after a non-finite result")
            if not torch.isfinite(pixels).all():
                raise NonFiniteOutputError("the VAE produced NaN or inf, also in fp32")
        result: torch.Tensor = (pixels.float().clamp(-1, 1) + 1) / 2
        return result

    @torch.no_grad()
    def preview(self, latents: torch.Tensor) -> npt.NDArray[np.uint8]:
        """An (H, W, 3) RGB picture of latents mid-render, at the image's size (at most `PREVIEW_MAX_SIDE`).

        A small VAE (the demo model's) decodes them: the real picture, for little work. A large one (SD1.5's,
        seconds per decode on a CPU) is not run mid-render: a linear map of the latents to RGB, scaled up
        smoothly, stands in for it."""
        if self.preview_decodes:
            try:
                return to_uint8(self.decode(latents))
            except NonFiniteOutputError:
                pass  # mid-render latents can be wild: the approximation still shows something
        x = latents[:1].float().cpu()
        if self.preview_matrix is not None and self.preview_matrix.shape[0] == x.shape[1]:
            rgb = torch.einsum("bchw,cr->brhw", x, self.preview_matrix)
        else:
            rgb = x[:, :3] / 4  # no factors for this model: show the first channels
        height, width = (side * self.vae_scale_factor for side in x.shape[-2:])
        scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        rgb = torch.nn.functional.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
        return ((rgb[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()


# The scheduler component's settings that describe the model's training (not the sampler): carried over to
# whichever sampler a render asks for.
TRAINING_SCHEDULE_KEYS = (
    "num_train_timesteps",
    "beta_start",
    "beta_end",
    "beta_schedule",
    "trained_betas",
    "steps_offset",
    "prediction_type",
)


def instance_spec(item: InstanceSpec | Mapping[str, Any], index: int | None = None) -> InstanceSpec:
    """An `InstanceSpec` from a diffusers-style dict (see `InstanceDiffusionPipeline.__call__`); bad input is a
    `RequestValidationError` naming the instance and the field."""
    if isinstance(item, InstanceSpec):
        return item
    data = dict(item) if isinstance(item, Mapping) else item
    if isinstance(data, dict):
        mask = data.get("mask")
        if mask is not None and not isinstance(mask, Mapping):
            data["mask"] = MaskRLE.from_bitmap(np.asarray(mask) > 0).to_dict()  # an array: nonzero inside
        if "kind" not in data:
            data["kind"] = _richest_kind(data)
    return InstanceSpec.from_dict(data, index)


def _richest_kind(data: Mapping[str, Any]) -> str:
    for name, kind in (
        ("scribble", InstanceKind.SCRIBBLE),
        ("mask", InstanceKind.MASK),
        ("polygon", InstanceKind.MASK),
    ):
        if data.get(name) is not None:
            return kind.value
    return InstanceKind.BOX.value if data.get("box") is not None else InstanceKind.POINT.value


def vae_parameters(vae: torch.nn.Module) -> int:
    """The decoder's size: what a preview decode costs, roughly."""
    decoder = getattr(vae, "decoder", vae)
    return sum(parameter.numel() for parameter in decoder.parameters())


def to_uint8(pixels: torch.Tensor) -> npt.NDArray[np.uint8]:
    """(1, 3, H, W) in [0, 1] to (H, W, 3) uint8, truncating as the official code does."""
    array: npt.NDArray[np.uint8] = (pixels[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    return array
