"""The InstanceDiffusion UNet as a registered diffusers model.

`InstanceUNet2DConditionModel` is diffusers' gated UNet whose own `__init__` builds UniFusion as its
position net, ScaleU (hooked into the decoder) and the instance fusers. Their settings live in the model's
config next to the base UNet's (`instance_position_net`, `instance_fusers`, `instance_scaleu`), so
`save_pretrained(folder)` writes one folder (config.json and safetensors weights) and
`from_pretrained(folder, local_files_only=True)` builds the same model and loads it, with nothing bolted
on afterwards.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader finds a custom component's loading method by looking its base classes up in
# the component's own module (model_index.json names this module): ModelMixin must be visible here.
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

from engine.models.fusers import FuserConfig, install_fusers
from engine.models.scaleu import ScaleU, backbone_channels
from engine.models.unifusion import UniFusion, UniFusionConfig
from engine.own_memory import own_memory

__all__ = [
    "SD15_UNET",
    "InstanceConfigError",
    "InstanceUNet2DConditionModel",
    "InstanceUNetConfig",
    "ModelMixin",
    "fuser_config",
    "position_net_config",
]

# The SD1.5 UNet (spec §1.1) as diffusers' UNet2DConditionModel arguments; the rest are diffusers' defaults.
SD15_UNET: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": (320, 640, 1280, 1280),
    "layers_per_block": 2,
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}


@dataclass(frozen=True)
class InstanceUNetConfig:
    unet: Mapping[str, Any] = field(default_factory=lambda: dict(SD15_UNET))
    position_net: UniFusionConfig = field(default_factory=UniFusionConfig)
    fusers: FuserConfig = field(default_factory=FuserConfig)  # the official model: unmasked, gates from 0

    def unet_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.unet)
        kwargs["attention_type"] = "gated"  # builds the fusers in every transformer block
        return kwargs

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `InstanceUNet2DConditionModel` for this config."""
        return {
            **self.unet_kwargs(),
            "instance_position_net": asdict(self.position_net),
            "instance_fusers": asdict(self.fusers),
        }


class InstanceConfigError(ValueError):
    """An `instance_*` entry of a UNet config that does not describe a model (names the entry and the key)."""


def position_net_config(value: Mapping[str, Any] | UniFusionConfig | None) -> UniFusionConfig:
    """A UniFusionConfig from the JSON form a config stores (lists for tuples); None is the official one."""
    if isinstance(value, UniFusionConfig):
        return value
    data = _known(value, UniFusionConfig, "instance_position_net", ignored={"drops"})
    settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return UniFusionConfig(**settings)


def fuser_config(value: Mapping[str, Any] | FuserConfig | None) -> FuserConfig:
    if isinstance(value, FuserConfig):
        return value
    return FuserConfig(**_known(value, FuserConfig, "instance_fusers"))


def _known(
    value: Mapping[str, Any] | None, kind: type, entry: str, ignored: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InstanceConfigError(f"{entry} must be a mapping of settings, not {type(value).__name__}")
    names = {f.name for f in fields(kind)}
    unknown = sorted(set(value) - names - set(ignored))
    if unknown:
        raise InstanceConfigError(f"{entry} has unknown settings: {', '.join(map(str, unknown))}")
    # `drops` was stored by older versions: it is a per-call choice now, not part of the model.
    return {k: v for k, v in value.items() if k in names}


def _instance_init(
    self: InstanceUNet2DConditionModel,
    instance_position_net: Mapping[str, Any] | None = None,
    instance_fusers: Mapping[str, Any] | None = None,
    instance_scaleu: bool = True,
    **unet_kwargs: Any,
) -> None:
    position = position_net_config(instance_position_net)
    fusers = fuser_config(instance_fusers)
    # Always the gated UNet: the fusers are what the grounding tokens reach the image through.
    UNet2DConditionModel.__init__(self, **{**unet_kwargs, "attention_type": "gated"})
    self.position_net = UniFusion(position)  # type: ignore[assignment]  # diffusers annotates its GLIGEN net
    self.scaleu = ScaleU(backbone_channels(self.config))
    self.scaleu.enabled = bool(instance_scaleu)
    install_fusers(self, fusers)
    self.scaleu.attach(self)
    # The config keeps every setting spelled out (and no stale `drops`), so a saved folder says what it is.
    self.register_to_config(  # type: ignore[no-untyped-call]
        attention_type="gated", instance_position_net=asdict(position), instance_fusers=asdict(fusers)
    )


def _merged_signature() -> inspect.Signature:
    """The base UNet's parameters plus the instance settings: diffusers reads a model's config keys (what
    `from_pretrained` passes to `__init__`) from its `__init__` signature."""
    base = inspect.signature(UNet2DConditionModel.__init__)
    extra = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        for name, default in (("instance_position_net", None), ("instance_fusers", None), ("instance_scaleu", True))
    ]
    return base.replace(parameters=[*base.parameters.values(), *extra])


_instance_init.__signature__ = _merged_signature()  # type: ignore[attr-defined]


class InstanceUNet2DConditionModel(UNet2DConditionModel):
    """diffusers' gated UNet with UniFusion (`position_net`), ScaleU (`scaleu`) and instance fusers.

    Takes every `UNet2DConditionModel` argument plus:
        instance_position_net: UniFusion's settings (`UniFusionConfig` fields); None: the official SD1.5 ones.
        instance_fusers: the fusers' settings (`FuserConfig` fields); None: the official ones.
        instance_scaleu: whether ScaleU rescales the decoder (the official model: yes).
    """

    __init__ = register_to_config(_instance_init)  # type: ignore[no-untyped-call]

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        """diffusers' loading, then the weights in memory of their own (`engine.own_memory`: the same
        output whichever file layout they came from)."""
        loaded: Any = super().from_pretrained(*args, **kwargs)  # (model, info) with output_loading_info
        own_memory(loaded[0] if isinstance(loaded, tuple) else loaded)
        return loaded

    def _set_pos_net_if_use_gligen(self, attention_type: str, cross_attention_dim: int) -> None:
        """Build nothing here: `__init__` installs UniFusion instead of diffusers' GLIGEN projection."""

    @property
    def instance_config(self) -> InstanceUNetConfig:
        """The model's settings in the app's own form (what `build_instance_unet` takes)."""
        config = dict(self.config)
        base_keys = set(inspect.signature(UNet2DConditionModel.__init__).parameters) - {"self"}
        unet = {k: v for k, v in config.items() if k in base_keys and k != "attention_type"}
        return InstanceUNetConfig(
            unet=unet,
            position_net=position_net_config(config.get("instance_position_net")),
            fusers=fuser_config(config.get("instance_fusers")),
        )
