"""InstanceDiffusionPipeline: a `RenderRequest` in, an image out.

Written in diffusers' shape (`check_inputs`, `encode_prompt`, `prepare_latents`, numbered steps,
`@torch.no_grad()`), around the tensor-level sampler in `engine.sampler`:

1. check the request against the model;
2. encode the prompt, the negative prompt and the instance captions (cached by text);
3. turn the layout into grounding tokens: the full condition, one chain per instance, the null input;
4. draw the noise: from the seed and the canvas size only, on a CPU generator in fp32, so editing the
   layout never changes it;
5. sample;
6. decode with the VAE (retried once in fp32 if the output is not finite).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from engine.chain_cache import ChainCache, chain_key, shared_digest
from engine.grounding import instance_tensors, null_grounding, slot_grounding
from engine.models.builder import position_net_of
from engine.models.fusers import fuser_config_of
from engine.models.unifusion import OFFICIAL_DROPS, GroundingDrops
from engine.regions import slot_regions
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from engine.sampler import Chain, RenderCancelled, SamplerHooks, SamplerSettings, cancellable, check_cancel, sample
from engine.schedulers import make_scheduler
from engine.text_cache import TextCache

__all__ = ["InstanceDiffusionPipeline", "NonFiniteOutputError", "PipelineOutput", "RenderCancelled"]

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


class InstanceDiffusionPipeline:
    """Stable Diffusion 1.5 with InstanceDiffusion's instance-level control.

    Args:
        vae ([`AutoencoderKL`]): decodes latents to images.
        text_encoder ([`CLIPTextModel`]): encodes the prompt (last hidden state) and the instance
            captions (pooled output, before the projection, as the official model).
        tokenizer ([`CLIPTokenizer`]): pads and truncates to 77 tokens.
        unet ([`UNet2DConditionModel`]): built by `engine.models.builder.build_instance_unet`.
        preview_factors: a (latent channels x 3) matrix mapping latents to RGB for previews that do not decode.
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        unet: UNet2DConditionModel,
        preview_factors: Sequence[Sequence[float]] | None = SD15_PREVIEW_FACTORS,
    ) -> None:
        self.vae, self.text_encoder, self.tokenizer, self.unet = vae, text_encoder, tokenizer, unet
        self.position_net = position_net_of(unet)
        self.preview_factors = None if preview_factors is None else torch.tensor(preview_factors, dtype=torch.float32)
        self.preview_decodes = vae_parameters(vae) <= PREVIEW_DECODE_MAX_PARAMETERS  # see `preview`
        self._prompt_cache = TextCache()
        self._pooled_cache = TextCache()
        # Instance chains kept between renders; `identity` names the weights (the runner sets it from the
        # model's hashes) so that a key never matches across models.
        self.chain_cache = ChainCache()
        self.identity = ""

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def vae_scale_factor(self) -> int:
        return int(2 ** (len(self.vae.config["block_out_channels"]) - 1))

    @property
    def canvas_multiple(self) -> int:
        """Canvas sides must be multiples of this: the VAE's factor times the UNet's downsampling."""
        return self.vae_scale_factor * int(2 ** (len(self.unet.config["block_out_channels"]) - 1))

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
        return self._prompt_cache.get_many(texts, lambda missing: self._encode(missing, pad_to_max=True)[0])

    def encode_instance_captions(self, captions: Sequence[str]) -> torch.Tensor:
        """(N, D) CLIP pooled outputs (the EOS token after the final norm, before the projection)."""
        if not captions:
            return torch.zeros(0, self.position_net.config.text_dim, device=self.device, dtype=self.dtype)
        # The official code tokenises each caption alone: pooling reads the EOS token, so padding would not
        # change it, but one at a time keeps each feature independent of what it was batched with.
        return self._pooled_cache.get_many(
            captions, lambda missing: torch.cat([self._encode([c], pad_to_max=False)[1] for c in missing])
        )

    def _encode(self, texts: list[str], pad_to_max: bool) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokenizer(
            texts,
            padding="max_length" if pad_to_max else True,
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        output = self.text_encoder(tokens.input_ids.to(self.text_encoder.device))
        # The text encoder may live elsewhere (offloaded to the CPU): results go where the UNet is.
        hidden = output.last_hidden_state.to(self.device, self.dtype)
        return hidden, output.pooler_output.to(self.device, self.dtype)

    # 3. Grounding

    def grounding_tokens(
        self, instances: Sequence[InstanceSpec]
    ) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Tokens for the full condition, for each instance alone (in slot 0), and the null input."""
        net = self.position_net
        config = net.config
        net.drops = OFFICIAL_DROPS[grounding_config(instances)] if instances else GroundingDrops()
        texts = self.encode_instance_captions([inst.caption for inst in instances])
        tensors = [instance_tensors(inst, text, config) for inst, text in zip(instances, texts, strict=True)]
        full = net(**slot_grounding(tensors, config))
        alone = [net(**slot_grounding([t], config)) for t in tensors]
        null = net(**null_grounding(config, self.dtype, self.device))
        return full, alone, null

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
        full = full.to(self.device, self.dtype)
        alone = []
        for slot in range(len(instances)):  # instance k alone sits in slot 0, with the region it has in the full chain
            region = torch.zeros_like(full)
            region[:, 0] = full[:, slot]
            alone.append(region)
        return full, alone

    # 4. Noise

    def prepare_latents(self, request: RenderRequest) -> torch.Tensor:
        """The starting noise: a function of the seed and the canvas size only (fp32, CPU generator)."""
        factor = self.vae_scale_factor
        shape = (1, self.unet.config["in_channels"], request.height // factor, request.width // factor)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)
        return noise.to(self.device, self.dtype)

    # The whole render

    @torch.no_grad()
    def __call__(
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
        timings: dict[str, float] = {}
        start = time.perf_counter()

        # 1. Check inputs
        self.check_inputs(request)
        check_cancel(should_cancel)  # a cancel during the model's load lands here

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

        # 4. Noise
        noise = self.prepare_latents(request)

        # 5. Sample
        def on_step(done: int, total: int, latents: torch.Tensor) -> None:
            if callback is not None:
                wants_preview = preview_every > 0 and (done % preview_every == 0 or done == total)
                callback(done, total, self.preview(latents) if wants_preview else None)

        hooks = SamplerHooks(on_step=on_step, should_cancel=should_cancel, max_batch=max_batch)
        settings = SamplerSettings(request.steps, request.guidance, request.alpha, request.mis)
        sample_start = time.perf_counter()
        full = Chain(context, full_tokens if request.instances else None, full_regions)
        keys = self._chain_keys(request, settings, noise, uncond, null_tokens, chains) if reuse_chains else []
        known = [self.chain_cache.get(key) for key in keys]
        latents = sample(
            self.unet,
            make_scheduler(request.scheduler),
            noise,
            full,
            chains,
            uncond,
            null_tokens,
            settings,
            hooks,
            known=known,
        )
        for key, cached, merged in zip(keys, known, hooks.merged[1:], strict=False):
            if cached is None:
                self.chain_cache.put(key, merged)
        timings["sample"] = time.perf_counter() - sample_start
        if not torch.isfinite(latents).all():
            raise NonFiniteOutputError("the sampler produced NaN or inf latents")

        # 6. Decode (cancellable too: at SD1.5 size on a CPU it takes seconds)
        check_cancel(should_cancel)
        decode_start = time.perf_counter()
        notes: list[str] = []
        with cancellable(self.vae.decoder, should_cancel):
            pixels = self.decode(latents, notes)
        timings["decode"] = time.perf_counter() - decode_start
        timings["total"] = time.perf_counter() - start
        reused = tuple(index for index, cached in enumerate(known) if cached is not None)
        return PipelineOutput(image=to_uint8(pixels), latents=latents, timings=timings, notes=notes, reused=reused)

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
        plain = (settings, request.scheduler.value, self.identity, str(self.device), str(self.dtype))
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
        if self.preview_factors is not None and self.preview_factors.shape[0] == x.shape[1]:
            rgb = torch.einsum("bchw,cr->brhw", x, self.preview_factors)
        else:
            rgb = x[:, :3] / 4  # no factors for this model: show the first channels
        height, width = (side * self.vae_scale_factor for side in x.shape[-2:])
        scale = min(1.0, PREVIEW_MAX_SIDE / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        rgb = torch.nn.functional.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
        return ((rgb[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).to(torch.uint8).numpy()


def vae_parameters(vae: torch.nn.Module) -> int:
    """The decoder's size: what a preview decode costs, roughly."""
    decoder = getattr(vae, "decoder", vae)
    return sum(parameter.numel() for parameter in decoder.parameters())


def to_uint8(pixels: torch.Tensor) -> npt.NDArray[np.uint8]:
    """(1, 3, H, W) in [0, 1] to (H, W, 3) uint8, truncating as the official code does."""
    array: npt.NDArray[np.uint8] = (pixels[0].permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
    return array
