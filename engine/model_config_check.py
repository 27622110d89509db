"""Model configs (config.json) checked against sane types and bounds before anything is built from them.

A config is a file: a demo-model folder or a diffusers folder can hold one that asks for a UNet 100,000
channels wide (which allocated 5.75 GB for 53 s before failing), a list where a table belongs, or a
negative layer count, and the model classes answer with gigabytes or with `'position_net'`. Here every
field the loader passes on is checked first, and the first bad one is named with its path in the file:
"config.json: unet.block_out_channels[2] = 100000 is above 4096".

The bounds are a few times the largest model of the family (SD1.5/SD2 widths, CLIP-L/H text encoders), so
no real config is refused, and the worst config they allow is a real-sized model, not a memory bomb.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from engine.weights_io import CorruptWeightsError, WeightFileMissingError

__all__ = [
    "DEMO_CONFIG",
    "SD_TEXT_CONFIG",
    "SD_UNET_CONFIG",
    "SD_VAE_CONFIG",
    "ModelConfigError",
    "Section",
    "check_config",
    "read_checked_config",
]

MAX_CHANNELS: Final = 4096
MAX_BLOCKS: Final = 8
MAX_LAYERS: Final = 8
# Fields a diffusers/transformers config may carry that these checks do not know: plain values only.
_MAX_OTHER_INT: Final = 1 << 20
_MAX_OTHER_ITEMS: Final = 64


class ModelConfigError(CorruptWeightsError):
    """A model config asks for something no model here can be; the reason names the field."""


# --- rules -----------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    """A value as it appears in the file, short: JSON spelling, huge numbers described."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a {len(str(abs(value)))}-digit number" if value.bit_length() < 4000 else "a huge number"
    text = json.dumps(value, default=str, allow_nan=True)
    return text if len(text) <= 40 else text[:39] + "…"


def _kind(value: Any) -> str:
    names = {
        bool: "true/false",
        int: "a whole number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a table",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


class Rule:
    def check(self, value: Any, where: str) -> str | None:
        """Why `value` (at `where`) is wrong, or None."""
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Rule):
    low: int
    high: int

    def check(self, value: Any, where: str) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{where} = {_shown(value)} is {_kind(value)}, expected a whole number"
        if value < self.low:
            return f"{where} = {_shown(value)} is below {self.low}"
        if value > self.high:
            return f"{where} = {_shown(value)} is above {self.high}"
        return None


@dataclass(frozen=True)
class Float(Rule):
    low: float
    high: float

    def check(self, value: Any, where: str) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{where} = {_shown(value)} is {_kind(value)}, expected a number"
        if not math.isfinite(value):
            return f"{where} = {_shown(value)} is not a finite number"
        if not self.low <= value <= self.high:
            return f"{where} = {_shown(value)} is outside {self.low:g}..{self.high:g}"
        return None


@dataclass(frozen=True)
class Bool(Rule):
    def check(self, value: Any, where: str) -> str | None:
        return None if isinstance(value, bool) else f"{where} = {_shown(value)} is {_kind(value)}, expected true/false"


@dataclass(frozen=True)
class Choice(Rule):
    options: tuple[str, ...]

    def check(self, value: Any, where: str) -> str | None:
        if value in self.options and isinstance(value, str):
            return None
        return f"{where} = {_shown(value)} is not one of {', '.join(self.options)}"


@dataclass(frozen=True)
class Null(Rule):
    def check(self, value: Any, where: str) -> str | None:
        return None if value is None else f"{where} = {_shown(value)} should be null"


@dataclass(frozen=True)
class Seq(Rule):
    item: Rule
    min_len: int
    max_len: int

    def check(self, value: Any, where: str) -> str | None:
        if not isinstance(value, list | tuple):
            return f"{where} = {_shown(value)} is {_kind(value)}, expected a list"
        if not self.min_len <= len(value) <= self.max_len:
            span = str(self.min_len) if self.min_len == self.max_len else f"{self.min_len} to {self.max_len}"
            return f"{where} has {len(value)} items, expected {span}"
        for index, item in enumerate(value):
            if problem := self.item.check(item, f"{where}[{index}]"):
                return problem
        return None


@dataclass(frozen=True)
class AnyOf(Rule):
    """The first rule's complaint is the one shown (list the usual form first)."""

    rules: tuple[Rule, ...]

    def check(self, value: Any, where: str) -> str | None:
        problems = [rule.check(value, where) for rule in self.rules]
        return None if None in problems else problems[0]


@dataclass(frozen=True)
class Section(Rule):
    """A table. `strict`: keys without a rule are refused (they would reach a constructor as keywords);
    otherwise they may hold plain, small values only (metadata of other library versions)."""

    fields: Mapping[str, Rule]
    required: frozenset[str] = frozenset()
    strict: bool = True
    same_length: tuple[str, ...] = ()  # list fields that describe the same blocks
    divides: tuple[tuple[str, str], ...] = ()  # (divisor field, field every item of which it must divide)
    extra: tuple[Callable[[Mapping[str, Any], str], str | None], ...] = field(default=())  # checks across fields

    def check(self, value: Any, where: str) -> str | None:
        if not isinstance(value, dict):
            return f"{where or 'the file'} is {_kind(value)}, expected a table"
        prefix = f"{where}." if where else ""
        missing = sorted(self.required - value.keys())
        if missing:
            return f"{prefix}{missing[0]} is missing"
        for name, item in value.items():
            rule = self.fields.get(name)
            if rule is not None:
                problem = rule.check(item, f"{prefix}{name}")
            elif self.strict:
                problem = f"{prefix}{_shown(name)[1:-1]} is not a setting this model has"
            else:
                problem = _plain(item, f"{prefix}{name}", depth=0)
            if problem:
                return problem
        return self._across(value, prefix)

    def _across(self, value: Mapping[str, Any], prefix: str) -> str | None:
        lengths = {name: len(value[name]) for name in self.same_length if isinstance(value.get(name), list | tuple)}
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"{prefix}{name} has {count}" for name, count in lengths.items())
            return f"these lists must be as long as each other: {listed}"
        for divisor_name, name in self.divides:
            divisor, items = value.get(divisor_name), value.get(name)
            if isinstance(divisor, bool) or not isinstance(divisor, int) or not isinstance(items, list | tuple):
                continue
            for index, item in enumerate(items):
                if isinstance(item, int) and item % divisor:
                    return f"{prefix}{name}[{index}] = {item} is not a multiple of {prefix}{divisor_name} = {divisor}"
        for check in self.extra:
            if problem := check(value, prefix):
                return problem
        return None


def _plain(value: Any, where: str, depth: int) -> str | None:
    """Values of fields no rule knows: null, true/false, short text, moderate numbers, short lists of those."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if abs(value) <= _MAX_OTHER_INT else f"{where} = {_shown(value)} is above {_MAX_OTHER_INT}"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{where} = {_shown(value)} is not a finite number"
    if isinstance(value, str):
        return None if len(value) <= 1000 else f"{where} is {len(value)} characters of text"
    if isinstance(value, list | dict) and depth < 3:
        if len(value) > _MAX_OTHER_ITEMS:
            return f"{where} has {len(value)} items, expected at most {_MAX_OTHER_ITEMS}"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if problem := _plain(
                item, f"{where}[{key!r}]" if isinstance(value, dict) else f"{where}[{key}]", depth + 1
            ):
                return problem
        return None
    return f"{where} = {_shown(value)} is nested too deep" if isinstance(value, list | dict) else None


# --- the configs -------------------------------------------------------------------------------------

_CHANNELS = Int(1, MAX_CHANNELS)
_BLOCK_CHANNELS = Seq(_CHANNELS, 1, MAX_BLOCKS)
_IMAGE_CHANNELS = Int(1, 16)
_GROUPS = Int(1, 256)
_HEADS = AnyOf((Int(1, 256), Seq(Int(1, 256), 1, MAX_BLOCKS), Null()))
_UNET_DOWN = ("CrossAttnDownBlock2D", "DownBlock2D")
_UNET_UP = ("CrossAttnUpBlock2D", "UpBlock2D")


def _unet_rules(*, strict: bool, required: frozenset[str] = frozenset()) -> Section:
    return Section(
        {
            "sample_size": AnyOf((Int(1, 1024), Seq(Int(1, 1024), 2, 2))),
            "in_channels": _IMAGE_CHANNELS,
            "out_channels": _IMAGE_CHANNELS,
            "block_out_channels": _BLOCK_CHANNELS,
            "layers_per_block": AnyOf((Int(1, MAX_LAYERS), Seq(Int(1, MAX_LAYERS), 1, MAX_BLOCKS))),
            "down_block_types": Seq(Choice(_UNET_DOWN), 1, MAX_BLOCKS),
            "up_block_types": Seq(Choice(_UNET_UP), 1, MAX_BLOCKS),
            "cross_attention_dim": AnyOf((_CHANNELS, Seq(_CHANNELS, 1, MAX_BLOCKS))),
            "attention_head_dim": _HEADS,
            "num_attention_heads": _HEADS,
            "norm_num_groups": AnyOf((_GROUPS, Null())),
            "transformer_layers_per_block": AnyOf((Int(1, 16), Seq(Int(1, 16), 1, MAX_BLOCKS))),
            "time_embedding_dim": AnyOf((Null(), Int(1, 4 * MAX_CHANNELS))),
            "num_class_embeds": AnyOf((Null(), Int(1, 10_000))),
            "projection_class_embeddings_input_dim": AnyOf((Null(), _CHANNELS)),
            "encoder_hid_dim": AnyOf((Null(), _CHANNELS)),
        },
        required=required,
        strict=strict,
        # Per-block settings given as lists must have one entry per block (diffusers says so less clearly).
        same_length=(
            "block_out_channels",
            "down_block_types",
            "up_block_types",
            "layers_per_block",
            "cross_attention_dim",
            "attention_head_dim",
            "num_attention_heads",
            "transformer_layers_per_block",
        ),
        divides=(("norm_num_groups", "block_out_channels"),),
    )


def _vae_rules(*, strict: bool, required: frozenset[str] = frozenset()) -> Section:
    return Section(
        {
            "in_channels": _IMAGE_CHANNELS,
            "out_channels": _IMAGE_CHANNELS,
            "block_out_channels": _BLOCK_CHANNELS,
            "down_block_types": Seq(Choice(("DownEncoderBlock2D",)), 1, MAX_BLOCKS),
            "up_block_types": Seq(Choice(("UpDecoderBlock2D",)), 1, MAX_BLOCKS),
            "layers_per_block": Int(1, MAX_LAYERS),
            "latent_channels": Int(1, 64),
            "norm_num_groups": _GROUPS,
            "sample_size": AnyOf((Int(1, 4096), Seq(Int(1, 4096), 2, 2))),
            "scaling_factor": Float(1e-6, 1e6),
        },
        required=required,
        strict=strict,
        same_length=("block_out_channels", "down_block_types", "up_block_types"),
        divides=(("norm_num_groups", "block_out_channels"),),
    )


def _heads_divide_width(section: Mapping[str, Any], prefix: str) -> str | None:
    width, heads = section.get("hidden_size"), section.get("num_attention_heads")
    if isinstance(width, int) and isinstance(heads, int) and heads > 0 and width % heads:
        return f"{prefix}hidden_size = {width} is not a multiple of {prefix}num_attention_heads = {heads}"
    return None


_TEXT_FIELDS: Final[dict[str, Rule]] = {
    "hidden_size": _CHANNELS,
    "intermediate_size": Int(1, 4 * MAX_CHANNELS),
    "num_hidden_layers": Int(1, 48),
    "num_attention_heads": Int(1, 64),
    "max_position_embeddings": Int(1, 1024),
    "projection_dim": _CHANNELS,
    "vocab_size": Int(1, 262_144),
}


def _seg_tokens_fit(section: Mapping[str, Any], prefix: str) -> str | None:
    """UniFusion splits the ConvNeXt output (dims[-1] x (seg_size/32)^2) into seg_tokens equal rows."""
    size, tokens, dims = section.get("seg_size"), section.get("seg_tokens"), section.get("convnext_dims")
    if not (isinstance(size, int) and isinstance(tokens, int) and isinstance(dims, list | tuple) and dims):
        return None
    if size % 32:
        return f"{prefix}seg_size = {size} is not a multiple of 32"
    if isinstance(dims[-1], int) and (dims[-1] * (size // 32) ** 2) % tokens:
        return f"{prefix}seg_tokens = {tokens} does not divide the mask features ({prefix}seg_size, {prefix}convnext_dims)"
    return None


_POSITION_NET: Final = Section(
    {
        "text_dim": _CHANNELS,
        "out_dim": _CHANNELS,
        "mid_dim": Int(1, 4 * MAX_CHANNELS),
        "max_objs": Int(1, 256),
        "fourier_freqs": Int(1, 64),
        "scribble_points": Int(1, 1024),
        "polygon_points": Int(1, 1024),
        "seg_size": Int(32, 1024),
        "seg_tokens": Int(1, 1024),
        "convnext_depths": Seq(Int(1, 32), 4, 4),
        "convnext_dims": Seq(_CHANNELS, 4, 4),
        "drops": Section({name: Bool() for name in ("boxes", "points", "scribbles", "masks")}),
    },
    required=frozenset(
        {"text_dim", "out_dim", "mid_dim", "polygon_points", "seg_size", "convnext_depths", "convnext_dims"}
    ),
    extra=(_seg_tokens_fit,),
)

_FUSERS: Final = Section(
    {
        "masked_attention": Bool(),
        "gate_init": Float(-10.0, 10.0),
        "point_radius": Float(0.0, 1.0),
        "scribble_radius": Float(0.0, 1.0),
    }
)

# The demo model's config.json (engine.demo.model.save_demo): every section is passed whole to a
# constructor, so nothing unknown may be in it, and the dimensions its weights were saved with must be there.
DEMO_CONFIG: Final = Section(
    {
        "vae": _vae_rules(
            strict=True,
            required=frozenset({"block_out_channels", "down_block_types", "up_block_types", "latent_channels"}),
        ),
        "unet": _unet_rules(
            strict=True,
            required=frozenset({"block_out_channels", "down_block_types", "up_block_types", "cross_attention_dim"}),
        ),
        "position_net": _POSITION_NET,
        "text": Section(
            {name: rule for name, rule in _TEXT_FIELDS.items() if name != "vocab_size"},
            required=frozenset({"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}),
            extra=(_heads_divide_width,),
        ),
        "fusers": _FUSERS,
        "preview_factors": AnyOf((Seq(Seq(Float(-1e3, 1e3), 3, 3), 1, 64), Null())),
    },
    required=frozenset({"vae", "unet", "position_net", "text"}),
)
# Stable Diffusion's own configs (diffusers folders, or the bundled resources/sd15): other library versions
# add keys, so unknown keys are allowed, holding plain values.
SD_UNET_CONFIG: Final = _unet_rules(strict=False)
SD_VAE_CONFIG: Final = _vae_rules(strict=False)
SD_TEXT_CONFIG: Final = Section(_TEXT_FIELDS, strict=False, extra=(_heads_divide_width,))


# --- entry points --------------------------------------------------------------------------------------


def check_config(data: Any, rules: Section, path: str | os.PathLike[str]) -> None:
    """Raise ModelConfigError naming the first field of `data` (read from `path`) that breaks `rules`."""
    problem = rules.check(data, "")
    if problem:
        raise ModelConfigError(Path(os.fspath(path)), problem)


def read_checked_config(
    path: str | os.PathLike[str], rules: Section, *, hint: str | None = None, max_bytes: int = 1 << 20
) -> dict[str, Any]:
    """A config.json read (at most `max_bytes`: configs are small) and checked against `rules`."""
    file = Path(os.fspath(path))
    try:
        with file.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise WeightFileMissingError(file, hint) from None
    except OSError as exc:
        raise CorruptWeightsError(file, f"could not read the file: {exc.strerror or exc}") from exc
    if len(raw) > max_bytes:
        raise ModelConfigError(file, f"it is larger than {max_bytes // 1024} KiB, which no model config is")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelConfigError(file, f"not a readable JSON config ({' '.join(str(exc).split())[:120]})") from exc
    check_config(data, rules, file)
    return dict(data)
