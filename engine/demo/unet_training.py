"""Training the demo model, part 2: the grounded UNet (with UniFusion, ScaleU) and the text encoder.

The training set is `config.scenes` world scenes, made and encoded once (`SceneSet`, cached in the run
folder): their VAE latents (mean and spread, so each step still draws a fresh latent sample), captions and,
for every location kind, the position net's inputs and the instances' regions. Each step draws a batch
(from (seed, step), so a resumed run sees the batches it would have seen), locates it with one location
kind (cycling box, point, scribble, mask, under that kind's official drop flags) and trains on the epsilon
loss at random timesteps of SD's schedule, weighted by Min-SNR-gamma. As the official training does, some
samples lose their grounding (null input) or their caption, which classifier-free guidance needs.
The recipe and its ablations: docs/demo_model.md.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from common.atomic_files import atomic_path
from engine.demo.model import DemoComponents
from engine.demo.training import learning_rate_at, load_optimizer, plot_loss, save_optimizer
from engine.demo.world import MAX_INSTANCES, generate, instance_captions
from engine.grounding import instance_tensors
from engine.models.builder import position_net_of
from engine.models.fusers import RegionTokens, fuser_config_of
from engine.models.unifusion import OFFICIAL_DROPS
from engine.regions import slot_regions
from engine.request import InstanceKind
from engine.schedulers import SD15_SCHEDULE
from engine.weights_io import read_safetensors, write_safetensors_atomic

KIND_CYCLE = (InstanceKind.BOX, InstanceKind.POINT, InstanceKind.SCRIBBLE, InstanceKind.MASK)
LOCATION_KEYS = ("boxes", "points", "scribbles", "polygons")


@dataclass(frozen=True)
class UnetTrainingConfig:
    seed: int = 0
    image_size: int = 64
    batch_size: int = 32
    steps: int = 6000
    learning_rate: float = 5e-4
    null_grounding: float = 0.1
    empty_caption: float = 0.1
    warmup_steps: int = 200
    max_grad_norm: float = 1.0
    checkpoint_every: int = 250
    scenes: int = 8192  # the training set: world scenes made and VAE-encoded once
    min_instances: int = 1  # raise it for layouts with more instances
    min_snr_gamma: float = 0.0  # Min-SNR-gamma loss weighting; 0 turns it off
    train_text_encoder: bool = True
    # A demo model folder (relative to the repository) whose text encoder starts ours; "" for a fresh one.
    text_encoder_from: str = ""

    @classmethod
    def load(cls, path: Path) -> UnetTrainingConfig:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


@dataclass
class SceneSet:
    """The training scenes, encoded once: (N, ...) tensors, S = the world's most instances per scene."""

    latent_mean: torch.Tensor  # (N, C, h, w), already scaled by the VAE's factor
    latent_std: torch.Tensor
    prompts: list[str]
    caption_ids: torch.Tensor  # (N, S) index into `instance_captions()`, -1 for no instance
    locations: dict[InstanceKind, dict[str, torch.Tensor]]  # per kind: boxes (N,S,4), points, scribbles, polygons
    segs: torch.Tensor  # (N, S, side, side) bool: the mask kind's masks
    regions: dict[InstanceKind, torch.Tensor]  # per kind: (N, S, h, w) bool

    def __len__(self) -> int:
        return len(self.prompts)

    def save(self, path: Path) -> None:
        tensors: dict[str, object] = {
            "latent_mean": self.latent_mean,
            "latent_std": self.latent_std,
            "caption_ids": self.caption_ids,
            "segs": self.segs,
            "prompts": self.prompts,
        }
        for kind in InstanceKind:
            tensors[f"regions.{kind.value}"] = self.regions[kind]
            for key, value in self.locations[kind].items():
                tensors[f"{kind.value}.{key}"] = value
        with atomic_path(path) as tmp:
            torch.save(tensors, tmp)

    @classmethod
    def load(cls, path: Path) -> SceneSet:
        data = torch.load(path, weights_only=True)
        return cls(
            latent_mean=data["latent_mean"],
            latent_std=data["latent_std"],
            prompts=list(data["prompts"]),
            caption_ids=data["caption_ids"],
            locations={k: {key: data[f"{k.value}.{key}"] for key in LOCATION_KEYS} for k in InstanceKind},
            segs=data["segs"],
            regions={k: data[f"regions.{k.value}"] for k in InstanceKind},
        )


def scene_seeds(config: UnetTrainingConfig) -> list[int]:
    """The world seeds of the training scenes, derived from the config's seed."""
    return [int(seed) for seed in np.random.SeedSequence([config.seed, 7]).generate_state(config.scenes)]


@torch.no_grad()
def build_scene_set(
    config: UnetTrainingConfig, components: DemoComponents, vae: AutoencoderKL, chunk: int = 256
) -> SceneSet:
    """Make the training scenes (seeds from config.seed) and encode them with the frozen VAE."""
    net_config = position_net_of(components.unet).config
    fusers = fuser_config_of(components.unet)
    vocabulary = {caption: index for index, caption in enumerate(instance_captions())}
    scaling = float(vae.config["scaling_factor"])
    seeds = scene_seeds(config)
    count, slots, side = config.scenes, MAX_INSTANCES, net_config.seg_size
    latent_side = config.image_size // int(2 ** (len(vae.config["block_out_channels"]) - 1))
    caption_ids = torch.full((count, slots), -1, dtype=torch.long)
    widths = {"boxes": 4, "points": 2, "scribbles": 2 * net_config.scribble_points}
    widths["polygons"] = 2 * net_config.polygon_points
    locations = {k: {key: torch.zeros(count, slots, w) for key, w in widths.items()} for k in InstanceKind}
    regions = {k: torch.zeros(count, slots, latent_side, latent_side, dtype=torch.bool) for k in InstanceKind}
    segs = torch.zeros(count, slots, side, side, dtype=torch.bool)
    prompts: list[str] = []
    means, stds = [], []
    for start in range(0, count, chunk):
        scenes = [
            generate(seed, size=config.image_size, min_instances=config.min_instances)
            for seed in seeds[start : start + chunk]
        ]
        images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 127.5 - 1
        posterior = vae.encode(images.to(vae.device)).latent_dist
        means.append((posterior.mean * scaling).cpu())
        stds.append((posterior.std * scaling).cpu())
        for offset, scene in enumerate(scenes):
            n = start + offset
            prompts.append(scene.caption)
            for slot, inst in enumerate(scene.instances):
                caption_ids[n, slot] = vocabulary[inst.caption]
            for kind in InstanceKind:
                specs = scene.specs(kind)
                grid = slot_regions(specs, slots, latent_side, latent_side, fusers)[0]
                regions[kind][n] = grid > 0
                for slot, spec in enumerate(specs):
                    inputs = instance_tensors(spec, torch.zeros(net_config.text_dim), net_config)
                    for key, value in zip(
                        LOCATION_KEYS, (inputs.box, inputs.point, inputs.scribble, inputs.polygon), strict=True
                    ):
                        locations[kind][key][n, slot] = value
                    if kind is InstanceKind.MASK and inputs.seg is not None:
                        segs[n, slot] = inputs.seg > 0
    return SceneSet(torch.cat(means), torch.cat(stds), prompts, caption_ids, locations, segs, regions)


@dataclass
class TrainingBatch:
    indices: torch.Tensor  # (B,) rows of the scene set
    prompts: list[str]
    grounded: torch.Tensor  # (B,) bool: False where the sample lost its grounding
    kind: InstanceKind


def training_batch(config: UnetTrainingConfig, step: int, scenes: SceneSet) -> TrainingBatch:
    """Batch `step`: the same for the same seed and step."""
    rng = np.random.default_rng([config.seed, step, 1])
    indices = torch.from_numpy(rng.integers(0, len(scenes), config.batch_size))
    prompts = ["" if rng.random() < config.empty_caption else scenes.prompts[int(i)] for i in indices]
    grounded = torch.from_numpy(rng.random(config.batch_size) >= config.null_grounding)
    return TrainingBatch(indices, prompts, grounded, KIND_CYCLE[step % len(KIND_CYCLE)])


def grounding_inputs(
    batch: TrainingBatch, scenes: SceneSet, pooled: torch.Tensor, max_objs: int
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The position net's inputs (B, max_objs, ...) and the slot regions (B, max_objs, h, w) of a batch.

    `pooled` holds the caption feature of every instance caption of the vocabulary (gradients flow back).
    """
    rows, kind = batch.indices, batch.kind
    ids = scenes.caption_ids[rows]  # (B, S)
    present = (ids >= 0) & batch.grounded[:, None]
    slots = ids.shape[1]

    def to_slots(values: torch.Tensor) -> torch.Tensor:
        padded = values.new_zeros(values.shape[0], max_objs, *values.shape[2:])
        padded[:, :slots] = values * present.view(*present.shape, *([1] * (values.dim() - 2))).to(values.dtype)
        return padded

    inputs = {key: to_slots(value[rows]) for key, value in scenes.locations[kind].items()}
    inputs["masks"] = to_slots(present.float())
    inputs["positive_embeddings"] = to_slots(pooled[ids.clamp(min=0)])
    if kind is InstanceKind.MASK:  # other kinds give no mask image: the net's null seg feature stands in
        inputs["segs"] = to_slots(scenes.segs[rows].float())
    return inputs, to_slots(scenes.regions[kind][rows].float())


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma (Hang et al. 2023) for epsilon prediction: min(SNR, gamma) / SNR per sample; 1 when gamma is 0."""
    if gamma <= 0:
        return torch.ones(timesteps.shape[0])
    alphas = scheduler.alphas_cumprod.to(torch.float64)[timesteps.cpu()]
    snr = alphas / (1 - alphas)
    return (snr.clamp(max=gamma) / snr).float()


def train_unet(
    config: UnetTrainingConfig,
    components: DemoComponents,
    vae: AutoencoderKL,
    out: Path,
    *,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    until: int | None = None,
    device: str | torch.device = "cpu",
) -> DemoComponents:
    """Train (or resume) the UNet (and text encoder) in `out` on latents of the trained `vae` (kept frozen).

    `stop_after` and `until` end the run early as in `engine.demo.training.train_vae`.
    """
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "unet_training.json")
    scheduler = DDPMScheduler(**SD15_SCHEDULE)
    for module in (components.unet, components.text_encoder, vae):
        torch.nn.Module.to(module, device)
    vae.eval().requires_grad_(False)
    scenes = _scene_set(config, components, vae, out, log)
    components.text_encoder.requires_grad_(config.train_text_encoder)
    trainable = [*components.unet.parameters()]
    if config.train_text_encoder:
        trainable += [*components.text_encoder.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    start = _resume(components, optimizer, out)
    if start:
        log(f"resuming at step {start}")
    vocabulary = instance_captions()
    components.unet.train()
    components.text_encoder.train(config.train_text_encoder)
    log_file = out / "unet_loss.csv"
    began = time.perf_counter()
    for step in range(start, min(config.steps, until or config.steps)):
        if stop_after is not None and step - start >= stop_after:
            break
        batch = training_batch(config, step, scenes)
        loss = batch_loss(config, step, batch, scenes, components, scheduler, vocabulary)
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, config.learning_rate, config.warmup_steps, config.steps)
        optimizer.step()
        with log_file.open("a", newline="") as handle:
            csv.writer(handle).writerow([step + 1, f"{loss.item():.6f}", batch.kind.value])
        if (step + 1) % config.checkpoint_every == 0 or step + 1 in (config.steps, until):
            _checkpoint(components, optimizer, out, step + 1)
            plot_loss(log_file, out / "unet_loss.png", label="epsilon MSE (Min-SNR weighted)")
            rate = (step + 1 - start) / (time.perf_counter() - began)
            log(f"step {step + 1}/{config.steps}: loss {loss.item():.4f}, {rate:.2f} steps/s")
    for module in (components.unet, components.text_encoder):
        module.train(False)
    return components


def batch_loss(
    config: UnetTrainingConfig,
    step: int,
    batch: TrainingBatch,
    scenes: SceneSet,
    components: DemoComponents,
    scheduler: DDPMScheduler,
    vocabulary: list[str],
) -> torch.Tensor:
    """The Min-SNR-weighted epsilon loss of `batch`; its latent sample, noise and timesteps come from (seed, step)."""
    net = position_net_of(components.unet)
    drops = OFFICIAL_DROPS[batch.kind.value]  # per call: the model holds no drop state
    device = next(components.unet.parameters()).device
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
    rows = batch.indices
    # Drawn on the CPU generator, then moved: the same run on any device.
    sample_noise = torch.randn(scenes.latent_mean[rows].shape, generator=generator)
    latents = (scenes.latent_mean[rows] + scenes.latent_std[rows] * sample_noise).to(device)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    timesteps = torch.randint(0, scheduler.config["num_train_timesteps"], (len(rows),), generator=generator)
    noisy = scheduler.add_noise(latents, noise, cast(torch.IntTensor, timesteps.to(device)))
    inputs, regions = grounding_inputs(batch, scenes, _pooled(components, vocabulary), net.config.max_objs)
    tokens = net(**{key: value.to(device) for key, value in inputs.items()}, drops=drops)
    prediction: torch.Tensor = components.unet(
        noisy,
        timesteps.to(device),
        encoder_hidden_states=_context(components, batch.prompts),
        cross_attention_kwargs={"gligen": {"objs": RegionTokens(tokens, regions.to(device))}},
    ).sample
    per_sample = ((prediction - noise) ** 2).flatten(1).mean(1)
    return (per_sample * min_snr_weights(scheduler, timesteps, config.min_snr_gamma).to(device)).mean()


def _scene_set(
    config: UnetTrainingConfig, components: DemoComponents, vae: AutoencoderKL, out: Path, log: Callable[[str], None]
) -> SceneSet:
    """The run's training set, from its cache when the cache was made for the same data settings."""
    cache, key_file = out / "scenes.pt", out / "scenes.json"
    key = {name: getattr(config, name) for name in ("seed", "image_size", "scenes", "min_instances")}
    key["fusers"] = asdict(fuser_config_of(components.unet))
    if cache.exists() and key_file.exists() and json.loads(key_file.read_text(encoding="utf-8")) == key:
        return SceneSet.load(cache)
    began = time.perf_counter()
    scenes = build_scene_set(config, components, vae)
    scenes.save(cache)
    key_file.write_text(json.dumps(key) + "\n", encoding="utf-8")
    log(f"training set: {len(scenes)} scenes encoded in {time.perf_counter() - began:.0f} s")
    return scenes


def _pooled(components: DemoComponents, captions: list[str]) -> torch.Tensor:
    tokens = components.tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
    pooled: torch.Tensor = components.text_encoder(tokens.input_ids.to(components.text_encoder.device)).pooler_output
    return pooled.cpu()  # the scene set lives on the CPU; gradients still flow back


def _context(components: DemoComponents, prompts: list[str]) -> torch.Tensor:
    tokens = components.tokenizer(prompts, padding="max_length", truncation=True, return_tensors="pt")
    hidden: torch.Tensor = components.text_encoder(
        tokens.input_ids.to(components.text_encoder.device)
    ).last_hidden_state
    return hidden


def _checkpoint(components: DemoComponents, optimizer: torch.optim.Optimizer, out: Path, step: int) -> None:
    for name in ("unet", "text_encoder"):
        weights = {k: v.detach().cpu() for k, v in getattr(components, name).state_dict().items()}
        write_safetensors_atomic(weights, out / f"{name}.safetensors", metadata={"step": str(step)})
    save_optimizer(optimizer, step, out / "unet_optimizer.pt")


def _resume(components: DemoComponents, optimizer: torch.optim.Optimizer, out: Path) -> int:
    state_file = out / "unet_optimizer.pt"
    if not (state_file.exists() and (out / "unet.safetensors").exists()):
        return 0
    components.unet.load_state_dict(read_safetensors(out / "unet.safetensors"))
    components.text_encoder.load_state_dict(read_safetensors(out / "text_encoder.safetensors"))
    return load_optimizer(optimizer, state_file, out / "unet_loss.csv")
