"""The demo model's components: the same engine code as the full model, at small widths.

A 64x64 canvas; the VAE maps it to a 16x16x4 latent; a narrow gated UNet with UniFusion and ScaleU works
on that; a small CLIP text encoder reads the world's captions through the generated tokenizer. The
components are saved in one folder (configs as JSON, weights as safetensors, the tokenizer) and loaded
back offline.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from engine.checkpoint import load_weights
from engine.demo.training import DEMO_VAE
from engine.demo.vocabulary import MAX_LENGTH, write_tokenizer
from engine.model_config_check import DEMO_CONFIG, read_checked_config
from engine.models.builder import InstanceUNetConfig, build_instance_unet
from engine.models.fusers import FuserConfig
from engine.models.unifusion import UniFusionConfig
from engine.weights_io import read_safetensors, write_safetensors_atomic

WIDTH: Final = 64  # text and token width

DEMO_UNET: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (32, 64, 64),
    "layers_per_block": 1,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": WIDTH,
    # One head per block (diffusers reads this as the head count): on a CPU, attention over the 16x16 latent
    # with 8-wide heads took half of a training step; one 32/64-wide head per block costs a third of that.
    "attention_head_dim": 1,
    "norm_num_groups": 32,
}
# Trained from scratch: gates start open and the fusers attend by instance region (docs/demo_model.md).
DEMO_FUSERS = FuserConfig(masked_attention=True, gate_init=1.0)
DEMO_POSITION_NET = UniFusionConfig(
    text_dim=WIDTH,
    out_dim=WIDTH,
    mid_dim=128,
    polygon_points=64,  # fewer than the official 256: shapes are simple and the MLP stays small
    seg_size=64,
    convnext_depths=(1, 1, 1, 1),
    convnext_dims=(16, 32, 64, 64),
)
DEMO_TEXT: dict[str, Any] = {
    "hidden_size": WIDTH,
    "intermediate_size": 4 * WIDTH,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": MAX_LENGTH,
    "projection_dim": WIDTH,
}


@dataclass(frozen=True)
class DemoModelConfig:
    vae: dict[str, Any] = field(default_factory=lambda: dict(DEMO_VAE))
    unet: dict[str, Any] = field(default_factory=lambda: dict(DEMO_UNET))
    position_net: UniFusionConfig = DEMO_POSITION_NET
    text: dict[str, Any] = field(default_factory=lambda: dict(DEMO_TEXT))
    fusers: FuserConfig = DEMO_FUSERS
    # Latent -> RGB for previews (fitted to the trained VAE: engine.demo.training.fit_preview_factors).
    preview_factors: tuple[tuple[float, ...], ...] | None = None

    @property
    def instance_unet(self) -> InstanceUNetConfig:
        return InstanceUNetConfig(unet=self.unet, position_net=self.position_net, fusers=self.fusers)


@dataclass
class DemoComponents:
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    unet: UNet2DConditionModel


def build_demo_components(config: DemoModelConfig, tokenizer_dir: Path) -> DemoComponents:
    """Fresh (untrained) components; the tokenizer is generated into `tokenizer_dir`."""
    tokenizer = write_tokenizer(tokenizer_dir)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config.text,
    )
    vae: AutoencoderKL = AutoencoderKL(**config.vae)
    return DemoComponents(vae, CLIPTextModel(text_config), tokenizer, build_instance_unet(config.instance_unet))


def save_demo(components: DemoComponents, config: DemoModelConfig, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = asdict(config)
    (folder / "config.json").write_text(json.dumps(data, indent=2, default=list) + "\n", encoding="utf-8")
    components.tokenizer.save_pretrained(folder / "tokenizer")
    for name in ("vae", "text_encoder", "unet"):
        state = getattr(components, name).state_dict()
        # Stored in half precision (the shipped model must stay small); loaded back into fp32 modules.
        halved = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        write_safetensors_atomic(halved, folder / f"{name}.safetensors", metadata={"stored_dtype": "float16"})


def load_demo(folder: Path) -> tuple[DemoComponents, DemoModelConfig]:
    """Load a saved demo model offline; every weight file is shape-checked against its config.

    The config is checked first (types and bounds of every field, `engine.model_config_check`): a bad one
    is a ModelConfigError naming the field, before anything is built from it.
    """
    raw = read_checked_config(folder / "config.json", DEMO_CONFIG)
    factors = raw.pop("preview_factors", None)
    data = {key: _tuples(value) for key, value in raw.items()}
    position = dict(data["position_net"])
    position.pop("drops", None)  # a runtime choice of the pipeline, not part of the model
    config = DemoModelConfig(
        vae=data["vae"],
        unet=data["unet"],
        position_net=UniFusionConfig(**position),
        # Models saved before the fusers had a config were trained unmasked, gates from 0.
        fusers=FuserConfig(**data["fusers"]) if "fusers" in data else FuserConfig(),
        text=data["text"],
        preview_factors=None if factors is None else tuple(tuple(row) for row in factors),
    )
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    components = build_demo_components(config, folder / "tokenizer")
    components.tokenizer = tokenizer
    for name in ("vae", "text_encoder", "unet"):
        path = folder / f"{name}.safetensors"
        load_weights(getattr(components, name), read_safetensors(path), path)
    for module in (components.vae, components.text_encoder, components.unet):
        module.eval()
    return components, config


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists; the configs are written with tuples."""
    return {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()}
