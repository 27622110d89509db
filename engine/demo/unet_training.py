"""Training the demo model, part 2: the grounded UNet (with UniFusion, ScaleU) and the text encoder.

Each step draws world scenes (batch k from (seed, k), as the VAE), locates every instance with one
location kind (cycling box, point, scribble, mask, under that kind's official drop flags), and trains
on the epsilon loss at random timesteps of SD's schedule. As the official training does, some samples
lose their grounding (null input) or their caption, which classifier-free guidance needs.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

from engine.demo.model import DemoComponents
from engine.demo.training import learning_rate_at, load_optimizer, plot_loss, save_optimizer
from engine.demo.world import generate
from engine.grounding import instance_tensors, null_grounding, slot_grounding
from engine.models.builder import position_net_of
from engine.models.unifusion import OFFICIAL_DROPS
from engine.request import InstanceKind
from engine.schedulers import SD15_SCHEDULE
from engine.weights_io import read_safetensors, write_safetensors_atomic

KIND_CYCLE = (InstanceKind.BOX, InstanceKind.POINT, InstanceKind.SCRIBBLE, InstanceKind.MASK)


@dataclass(frozen=True)
class UnetTrainingConfig:
    seed: int = 0
    image_size: int = 64
    batch_size: int = 32
    steps: int = 20000
    learning_rate: float = 3e-4
    null_grounding: float = 0.1
    empty_caption: float = 0.1
    warmup_steps: int = 500
    max_grad_norm: float = 1.0
    checkpoint_every: int = 250

    @classmethod
    def load(cls, path: Path) -> UnetTrainingConfig:
        return cls(**json.loads(path.read_text(encoding="utf-8")))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")


@dataclass
class TrainingBatch:
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    prompts: list[str]
    grounding: dict[str, torch.Tensor]  # the position net's inputs, batch B
    kind: InstanceKind


def training_batch(config: UnetTrainingConfig, step: int, components: DemoComponents) -> TrainingBatch:
    """Batch `step`: the same for the same seed and step."""
    rng = np.random.default_rng([config.seed, step, 1])
    seeds = np.random.SeedSequence([config.seed, step]).generate_state(config.batch_size)
    kind = KIND_CYCLE[step % len(KIND_CYCLE)]
    net_config = position_net_of(components.unet).config
    device = components.text_encoder.device
    images, prompts, groundings = [], [], []
    for seed in seeds:
        scene = generate(int(seed), size=config.image_size)
        images.append(scene.image)
        prompts.append("" if rng.random() < config.empty_caption else scene.caption)
        if rng.random() < config.null_grounding:
            groundings.append(null_grounding(net_config, device=device))
            continue
        specs = scene.specs(kind)
        texts = _pooled(components, [spec.caption for spec in specs])
        tensors = [instance_tensors(spec, text, net_config) for spec, text in zip(specs, texts, strict=True)]
        groundings.append(slot_grounding(tensors, net_config))
    batch_images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    grounding = {key: torch.cat([g[key] for g in groundings]) for key in groundings[0]}
    return TrainingBatch(batch_images, prompts, grounding, kind)


def _pooled(components: DemoComponents, captions: list[str]) -> torch.Tensor:
    tokens = components.tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
    pooled: torch.Tensor = components.text_encoder(tokens.input_ids.to(components.text_encoder.device)).pooler_output
    return pooled


def _context(components: DemoComponents, prompts: list[str]) -> torch.Tensor:
    tokens = components.tokenizer(prompts, padding="max_length", truncation=True, return_tensors="pt")
    hidden: torch.Tensor = components.text_encoder(
        tokens.input_ids.to(components.text_encoder.device)
    ).last_hidden_state
    return hidden


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
    """Train (or resume) the UNet and text encoder in `out` on latents of the trained `vae` (kept frozen).

    `stop_after` and `until` end the run early as in `engine.demo.training.train_vae`.
    """
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "unet_training.json")
    scheduler = DDPMScheduler(**SD15_SCHEDULE)
    for module in (components.unet, components.text_encoder, vae):
        torch.nn.Module.to(module, device)
    trainable = [*components.unet.parameters(), *components.text_encoder.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    start = _resume(components, optimizer, out)
    if start:
        log(f"resuming at step {start}")
    vae.eval().requires_grad_(False)
    scaling = float(vae.config["scaling_factor"])
    net = position_net_of(components.unet)
    components.unet.train()
    components.text_encoder.train()
    log_file = out / "unet_loss.csv"
    began = time.perf_counter()
    for step in range(start, min(config.steps, until or config.steps)):
        if stop_after is not None and step - start >= stop_after:
            break
        batch = training_batch(config, step, components)
        net.drops = OFFICIAL_DROPS[batch.kind.value]
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        with torch.no_grad():
            latents = vae.encode(batch.images.to(device)).latent_dist.sample(generator=generator) * scaling
        # Drawn on the CPU generator, then moved: the same run on any device.
        noise = torch.randn(latents.shape, generator=generator).to(device)
        count = latents.shape[0]
        timesteps = torch.randint(0, scheduler.config["num_train_timesteps"], (count,), generator=generator).to(device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        tokens = net(**batch.grounding)
        prediction: torch.Tensor = components.unet(
            noisy,
            timesteps,
            encoder_hidden_states=_context(components, batch.prompts),
            cross_attention_kwargs={"gligen": {"objs": tokens}},
        ).sample
        loss = torch.nn.functional.mse_loss(prediction, noise)
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
            plot_loss(log_file, out / "unet_loss.png", label="epsilon MSE")
            rate = (step + 1 - start) / (time.perf_counter() - began)
            log(f"step {step + 1}/{config.steps}: loss {loss.item():.4f}, {rate:.2f} steps/s")
    for module in (components.unet, components.text_encoder):
        module.train(False)
    return components


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
