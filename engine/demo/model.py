"""The demo model's components: the same engine code as the full model, at small widths.

A 64x64 canvas; the VAE maps it to a 16x16x4 latent; a narrow gated UNet with UniFusion and ScaleU works
on that; a small CLIP text encoder reads the world's captions through the generated tokenizer. The
components are saved in one folder (configs as JSON, weights as safetensors, the tokenizer) and loaded
back offline.

Two folder layouts load: the app's own (`config.json` with every section, fp16 `vae`/`text_encoder`/`unet`
safetensors, `tokenizer/`), which `save_demo` writes and the bundled model ships in, and a diffusers
pipeline folder (`model_index.json`), what `InstanceDiffusionPipeline.save_pretrained` writes;
`migrate_demo` turns the first into the second. Either way the UNet is an `InstanceUNet2DConditionModel`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

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

if TYPE_CHECKING:
    from engine.pipeline import InstanceDiffusionPipeline

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
    return components_with(config, write_tokenizer(tokenizer_dir))


def components_with(config: DemoModelConfig, tokenizer: CLIPTokenizer) -> DemoComponents:
    """Fresh (untrained) components around an existing tokenizer (its vocabulary sizes the text encoder)."""
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


PIPELINE_INDEX: Final = "model_index.json"  # marks a diffusers pipeline folder


def load_demo(folder: Path) -> tuple[DemoComponents, DemoModelConfig]:
    """Load a saved demo model offline, from either layout (see the module's docstring).

    In the app's layout every weight file is shape-checked against its config, and the config is checked
    first (types and bounds of every field, `engine.model_config_check`): a bad one is a ModelConfigError
    naming the field, before anything is built from it. Folders from older versions (a `drops` entry in
    the position net's section, no `fusers` section) load as they were trained.
    """
    if (folder / PIPELINE_INDEX).exists():
        return _from_pipeline(load_demo_pipeline(folder))
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
    # Built around the saved tokenizer: loading writes nothing (the bundled model may sit in a read-only
    # install, and several processes may load it at once).
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
    components = components_with(config, tokenizer)
    for name in ("vae", "text_encoder", "unet"):
        path = folder / f"{name}.safetensors"
        load_weights(getattr(components, name), read_safetensors(path), path)
    for module in (components.vae, components.text_encoder, components.unet):
        module.eval()
    return components, config


def load_demo_pipeline(folder: Path) -> InstanceDiffusionPipeline:
    """The demo model as an `InstanceDiffusionPipeline`, offline, from either layout."""
    from engine.pipeline import InstanceDiffusionPipeline

    if (folder / PIPELINE_INDEX).exists():
        pipe: InstanceDiffusionPipeline = InstanceDiffusionPipeline.from_pretrained(folder, local_files_only=True)
        for module in (pipe.vae, pipe.text_encoder, pipe.unet):
            module.eval()
        return pipe
    components, config = load_demo(folder)
    return InstanceDiffusionPipeline(
        components.vae,
        components.text_encoder,
        components.tokenizer,
        components.unet,
        preview_factors=config.preview_factors,
    )


def migrate_demo(folder: Path, dest: Path) -> None:
    """Write the demo model in `folder` (either layout) to `dest` as a diffusers pipeline folder."""
    load_demo_pipeline(folder).save_pretrained(dest)


def _from_pipeline(pipe: InstanceDiffusionPipeline) -> tuple[DemoComponents, DemoModelConfig]:
    """Components and config of a demo model loaded as a pipeline."""
    unet_config = pipe.unet.instance_config
    factors = pipe.config.get("preview_factors")
    config = DemoModelConfig(
        vae={k: v for k, v in pipe.vae.config.items() if not k.startswith("_")},
        unet=dict(unet_config.unet),
        position_net=unet_config.position_net,
        text={k: getattr(pipe.text_encoder.config, k) for k in DEMO_TEXT},
        fusers=unet_config.fusers,
        preview_factors=None if factors is None else tuple(tuple(row) for row in factors),
    )
    return DemoComponents(pipe.vae, pipe.text_encoder, pipe.tokenizer, pipe.unet), config


def _tuples(section: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists; the configs are written with tuples."""
    return {key: tuple(value) if isinstance(value, list) else value for key, value in section.items()}
