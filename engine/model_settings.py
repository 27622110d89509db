"""Where the user's model files are and how to run them: a small JSON file the settings dialog edits.

Kept free of torch (and of any default location) so the GUI and the CLI can read and write it cheaply;
the caller decides where the file lives. A broken file is a typed error naming it, never a silent reset,
and saving goes through a temporary file and a rename, so a crash mid-write keeps the previous settings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from common.atomic_files import write_text_atomic

__all__ = ["DEVICE_CHOICES", "DTYPE_CHOICES", "ModelSettings", "ModelSettingsError"]

SETTINGS_VERSION: Final = 1
DEVICE_CHOICES: Final = ("auto", "cpu", "cuda", "mps")  # plus "cuda:N"
DTYPE_CHOICES: Final = ("auto", "fp16", "bf16", "fp32")
_CUDA_INDEX: Final = re.compile(r"cuda:\d+")
_FIELDS: Final = ("version", "sd15", "adapter", "device", "dtype", "bases", "loras", "low_memory", "checker")
# Names of fine-tuned bases and LoRAs: what a scene's settings and a render's metadata call them.
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}")
RESERVED_MODEL_IDS: Final = ("sd15", "demo")  # the built-in model ids a base may not take


class ModelSettingsError(Exception):
    """The settings file is missing, unreadable or holds wrong values; `str()` is "<path>: <reason>"."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def valid_device(value: str) -> bool:
    return value in DEVICE_CHOICES or bool(_CUDA_INDEX.fullmatch(value))


@dataclass(frozen=True)
class ModelSettings:
    """The SD1.5 location (folder, HF cache entry or single file), the adapter file, device/dtype preferences,
    fine-tuned bases and LoRAs, and the placement checker's folder."""

    sd15: Path | None = None
    adapter: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    # Fine-tuned SD1.5-architecture bases by name (a folder or a single file): a scene picks one as its
    # model id; each renders with the same adapter. LoRA files by name, applied per scene with a weight.
    bases: Mapping[str, Path] = field(default_factory=dict)
    loras: Mapping[str, Path] = field(default_factory=dict)
    low_memory: bool = False  # offload and tile on an accelerator from the start, not only after running out
    # The placement checker for every model but the demo: an open-vocabulary detector's folder (OWLv2 or
    # Grounding DINO, engine.checkers.detector); None: renders of those models are not checked.
    checker: Path | None = None

    def __post_init__(self) -> None:
        for kind, named in (("base", self.bases), ("LoRA", self.loras)):
            for name in named:
                check_name(kind, name)
        taken = sorted(set(self.bases) & set(RESERVED_MODEL_IDS))
        if taken:
            raise ValueError(f"a base may not be called {taken[0]!r}: that is a built-in model")
        if not valid_device(self.device):
            raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)} or cuda:N, not {self.device!r}")
        if self.dtype not in DTYPE_CHOICES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, not {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SETTINGS_VERSION,
            "sd15": None if self.sd15 is None else str(self.sd15),
            "adapter": None if self.adapter is None else str(self.adapter),
            "device": self.device,
            "dtype": self.dtype,
            "bases": {name: str(path) for name, path in sorted(self.bases.items())},
            "loras": {name: str(path) for name, path in sorted(self.loras.items())},
            "low_memory": self.low_memory,
            # Only when set: a file without a checker still opens in versions that do not know the key.
            **({"checker": str(self.checker)} if self.checker is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: object, path: str | os.PathLike[str] = "<settings>") -> ModelSettings:
        """Validate a parsed JSON value; every problem is a ModelSettingsError naming `path`."""
        if not isinstance(data, dict):
            raise ModelSettingsError(path, f"expected a JSON object, found {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _FIELDS)
        if unknown:
            raise ModelSettingsError(path, f"unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        version = data.get("version", SETTINGS_VERSION)
        if version != SETTINGS_VERSION:
            raise ModelSettingsError(
                path, f"settings version {version!r} is not supported (expected {SETTINGS_VERSION})"
            )
        paths: dict[str, Path | None] = {}
        for key in ("sd15", "adapter", "checker"):
            value = data.get(key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ModelSettingsError(path, f"{key!r} must be a path (a non-empty string) or null, not {value!r}")
            paths[key] = None if value is None else Path(value).expanduser()
        choices: dict[str, str] = {}
        for key in ("device", "dtype"):
            value = data.get(key, "auto")
            if not isinstance(value, str):
                raise ModelSettingsError(path, f"{key!r} must be a string, not {value!r}")
            choices[key] = value
        named = {key: _named_paths(data.get(key, {}), key, path) for key in ("bases", "loras")}
        low_memory = data.get("low_memory", False)
        if not isinstance(low_memory, bool):
            raise ModelSettingsError(path, f"'low_memory' must be true or false, not {low_memory!r}")
        try:
            return cls(
                sd15=paths["sd15"],
                adapter=paths["adapter"],
                device=choices["device"],
                dtype=choices["dtype"],
                bases=named["bases"],
                loras=named["loras"],
                low_memory=low_memory,
                checker=paths["checker"],
            )
        except ValueError as exc:
            raise ModelSettingsError(path, str(exc)) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, missing_ok: bool = False) -> ModelSettings:
        """Read settings from `path`; with `missing_ok`, a file that does not exist yet gives the defaults."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            if missing_ok:
                return cls()
            raise ModelSettingsError(file, "settings file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelSettingsError(file, f"could not read the settings file ({exc})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelSettingsError(
                file, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
            ) from None
        return cls.from_dict(data, file)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: a temporary sibling, flushed, then renamed over the old file (kept on any failure)."""
        target = Path(path)
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(target, text)


def check_name(kind: str, name: object) -> str:
    """A base's or LoRA's name: 1-64 letters, digits, spaces and `_.+-`, starting with a letter or digit."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"{kind} name {name!r} must be 1-64 letters, digits, spaces or _.+- (starting with a letter or digit)"
        )
    return name


def _named_paths(value: object, key: str, path: str | os.PathLike[str]) -> dict[str, Path]:
    if not isinstance(value, dict):
        raise ModelSettingsError(path, f"{key!r} must be an object of name: path, not {value!r}")
    named: dict[str, Path] = {}
    for name, file in value.items():
        if not isinstance(file, str) or not file.strip():
            raise ModelSettingsError(path, f"{key!r}: {name!r} must be a path (a non-empty string), not {file!r}")
        named[name] = Path(file).expanduser()
    return named
