"""Where Stable Diffusion 1.5 is: a diffusers folder, a Hugging Face cache entry or a single LDM file.

`resolve_sd15` turns what the user pointed at into the files loading will read (`Sd15Source`), checking
that each exists and reading no weights, so a missing file is a `WeightFileMissingError` naming it and
saying where to put it, before anything slow starts. A single `.ckpt` / `.safetensors` file is read with the
SD1.5 configs and CLIP tokenizer bundled in resources/sd15/ (see its README.md); so is the tokenizer of a
folder that has none. Nothing here imports diffusers or transformers, or reaches the hub.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from engine.weights_io import CorruptWeightsError, WeightFileError, WeightFileMissingError
from resources import resource_path

__all__ = [
    "CONFIGS_HINT",
    "SD15_CONFIGS",
    "SD15_HINT",
    "Sd15Source",
    "UnsupportedModelFileError",
    "has_tokenizer",
    "require_file",
    "resolve_sd15",
]

# The SD1.5 configs and CLIP tokenizer shipped with the app (see resources/sd15/README.md).
SD15_CONFIGS: Final = resource_path("sd15")
SD15_HINT: Final = (
    "put the Stable Diffusion 1.5 folder there (diffusers format, e.g. a copy of stable-diffusion-v1-5), "
    "or a single v1-5-pruned-emaonly.safetensors file; see Settings → Models"
)
CONFIGS_HINT: Final = "the bundled Stable Diffusion 1.5 configs are incomplete; reinstall Instance Studio"
SINGLE_FILE_SUFFIXES: Final = (".safetensors", ".ckpt")
# Hub cache entries that hold SD1.5 when the user points at the cache root (~/.cache/huggingface/hub).
KNOWN_CACHE_ENTRIES: Final = (
    "models--stable-diffusion-v1-5--stable-diffusion-v1-5",
    "models--runwayml--stable-diffusion-v1-5",
)
CONFIG_FILES: Final = (
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "scheduler/scheduler_config.json",
)
# Weight file names a diffusers folder may hold per component, in order of preference.
_DIFFUSERS_WEIGHTS: Final = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.fp16.bin",
)
_COMPONENT_WEIGHTS: Final[dict[str, tuple[str, ...]]] = {
    "unet": _DIFFUSERS_WEIGHTS,
    "vae": _DIFFUSERS_WEIGHTS,
    "text_encoder": ("model.safetensors", "model.fp16.safetensors", "pytorch_model.bin", "pytorch_model.fp16.bin"),
}
_SNAPSHOT_NAME: Final = re.compile(r"[A-Za-z0-9][\w.-]*")


class UnsupportedModelFileError(WeightFileError):
    """The path exists but is not something SD1.5 can be loaded from (wrong extension, unknown folder)."""


@dataclass(frozen=True)
class Sd15Source:
    """A resolved SD1.5 location: what to read, and with which configs and tokenizer.

    `weights` maps a component ("unet", "vae", "text_encoder"; "checkpoint" for a single file) to its file.
    """

    kind: Literal["diffusers", "single_file"]
    path: Path
    configs: Path
    tokenizer: Path
    weights: Mapping[str, Path] = field(default_factory=dict)


def require_file(file: Path, hint: str) -> Path:
    if not file.is_file():
        raise WeightFileMissingError(file, hint)
    return file


def has_tokenizer(folder: Path) -> bool:
    return ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()) or (
        folder / "tokenizer.json"
    ).is_file()


def _snapshot(entry: Path) -> Path:
    """The snapshot folder of a hub cache entry (`models--org--name`): the one `refs/main` names."""
    ref = entry / "refs" / "main"
    snapshots = entry / "snapshots"
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if not _SNAPSHOT_NAME.fullmatch(commit) or commit in {".", ".."}:
            raise CorruptWeightsError(ref, f"does not name a snapshot ({commit[:60]!r})")
        folder = snapshots / commit
        require_file(
            folder / "model_index.json", f"the cache entry's refs/main points at an incomplete snapshot; {SD15_HINT}"
        )
        return folder
    # No refs/main (a copied cache): use the only, or the newest, complete snapshot.
    candidates = [d for d in snapshots.iterdir() if (d / "model_index.json").is_file()] if snapshots.is_dir() else []
    if not candidates:
        raise WeightFileMissingError(ref, f"this Hugging Face cache entry has no complete snapshot; {SD15_HINT}")
    return max(candidates, key=lambda d: (d / "model_index.json").stat().st_mtime_ns)


def _diffusers_folder(folder: Path) -> Path:
    """A diffusers folder itself, a cache entry's snapshot, or SD1.5's entry inside a hub cache root."""
    if (folder / "model_index.json").is_file():
        return folder
    if folder.name.startswith("models--") or (folder / "snapshots").is_dir():
        return _snapshot(folder)
    for name in KNOWN_CACHE_ENTRIES:
        if (folder / name).is_dir():
            return _snapshot(folder / name)
    raise WeightFileMissingError(
        folder / "model_index.json",
        f"this folder is neither a diffusers model folder nor a Hugging Face cache entry; {SD15_HINT}",
    )


def _component_weights(folder: Path, component: str) -> Path:
    names = _COMPONENT_WEIGHTS[component]
    for name in names:
        if (folder / component / name).is_file():
            return folder / component / name
    raise WeightFileMissingError(
        folder / component / names[0], f"the Stable Diffusion 1.5 folder {folder} is incomplete; {SD15_HINT}"
    )


def resolve_sd15(path: str | os.PathLike[str], *, configs_dir: str | os.PathLike[str] | None = None) -> Sd15Source:
    """Where SD1.5 is and how to read it; checks that every needed file exists, reading no weights.

    `path`: a diffusers folder (`model_index.json`), a Hugging Face cache entry (`models--org--name`, its
    snapshot, or the cache root holding SD1.5), or a single LDM-layout `.safetensors`/`.ckpt` file. A single
    file is read with the configs in `configs_dir` (default: the bundled SD1.5 ones); so is the tokenizer of a
    folder that has none.
    """
    given = Path(path).expanduser()
    configs = Path(configs_dir) if configs_dir is not None else SD15_CONFIGS
    if not given.exists():
        raise WeightFileMissingError(given, SD15_HINT)
    if given.is_file():
        if given.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise UnsupportedModelFileError(
                given,
                f"not a Stable Diffusion 1.5 model: expected a folder, a .safetensors or a .ckpt file; {SD15_HINT}",
            )
        for name in CONFIG_FILES:
            require_file(configs / name, CONFIGS_HINT)
        tokenizer = configs / "tokenizer"
        require_file(tokenizer / "vocab.json", CONFIGS_HINT)
        return Sd15Source("single_file", given, configs, tokenizer, {"checkpoint": given})
    folder = _diffusers_folder(given)
    for name in CONFIG_FILES:
        require_file(folder / name, f"the Stable Diffusion 1.5 folder {folder} is incomplete; {SD15_HINT}")
    weights = {component: _component_weights(folder, component) for component in _COMPONENT_WEIGHTS}
    tokenizer = folder / "tokenizer"
    if not has_tokenizer(tokenizer):
        tokenizer = configs / "tokenizer"
        require_file(tokenizer / "vocab.json", CONFIGS_HINT)
    return Sd15Source("diffusers", folder, folder, tokenizer, weights)
