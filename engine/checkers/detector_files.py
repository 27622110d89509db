"""What a placement checker folder must hold, checked before (and without) loading its weights.

The folder is a transformers `save_pretrained` folder of an open-vocabulary detector: its config, its
processor's files and its weights as safetensors. Pickled weights (`pytorch_model.bin`) are refused, never
read: unpickling a downloaded file can run code. Every problem is a `CheckerFilesError` whose message is
one line naming the folder, for `main.py models verify`, the model dialog and a render's "not checked" note.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["FAMILIES", "CheckerFiles", "CheckerFilesError", "inspect_checker_folder"]

# The detector families this checker runs (config `model_type` -> the name a report carries) and what
# they are called where a user reads them.
FAMILIES: Final[dict[str, str]] = {"owlv2": "owlv2", "grounding-dino": "grounding-dino"}
FAMILY_TITLES: Final[dict[str, str]] = {"owlv2": "OWLv2", "grounding-dino": "Grounding DINO"}
CHOOSE_HINT: Final = "choose the folder of an OWLv2 or Grounding DINO model saved with save_pretrained as safetensors"
SAFE_WEIGHTS: Final = "model.safetensors"
SAFE_INDEX: Final = "model.safetensors.index.json"
PICKLED_WEIGHTS: Final = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.ckpt", "model.pt")
PROCESSOR_CONFIGS: Final = ("processor_config.json", "preprocessor_config.json")


class CheckerFilesError(Exception):
    """A checker folder that cannot be used; `str()` is one line: "placement checker <folder>: <reason>"."""

    def __init__(self, folder: str | os.PathLike[str], reason: str) -> None:
        self.folder = Path(folder)
        self.reason = " ".join(reason.split())
        super().__init__(f"placement checker {self.folder}: {self.reason}")


@dataclass(frozen=True)
class CheckerFiles:
    """A checker folder that passed the checks: its detector family and its weight files."""

    folder: Path
    model_type: str  # the config's, e.g. "owlv2"
    weights: tuple[Path, ...]

    @property
    def family(self) -> str:
        return FAMILIES[self.model_type]

    @property
    def name(self) -> str:
        """What a report calls this checker: "owlv2:<folder name>"."""
        return f"{self.family}:{self.folder.name}"

    @property
    def title(self) -> str:
        return FAMILY_TITLES[self.model_type]


def inspect_checker_folder(folder: Path) -> CheckerFiles:
    """Check `folder` (exists, a folder, a zero-shot detector's config, processor files, readable safetensors)
    without loading the model; CheckerFilesError says what is wrong."""
    folder = folder.expanduser()
    if not folder.exists():
        raise CheckerFilesError(folder, "folder not found")
    if not folder.is_dir():
        raise CheckerFilesError(folder, "not a folder (choose the folder the model was saved into)")
    model_type = _detector_type(folder)
    if not any((folder / name).is_file() for name in PROCESSOR_CONFIGS):
        raise CheckerFilesError(folder, f"no processor files ({PROCESSOR_CONFIGS[1]}): save the processor there too")
    return CheckerFiles(folder, model_type, _safe_weights(folder))


def _detector_type(folder: Path) -> str:
    """The config's model type, which must be a zero-shot detector this checker runs."""
    # Imported here: transformers is slow to import, and the model dialog checks on a worker thread.
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES

    if not (folder / "config.json").is_file():
        raise CheckerFilesError(folder, "no config.json: not a saved model folder")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable, not JSON, unknown or invalid
        raise CheckerFilesError(folder, f"config.json cannot be read ({_first_line(exc)})") from None
    model_type = str(config.model_type)
    if model_type in FAMILIES:
        return model_type
    if model_type in MODEL_FOR_ZERO_SHOT_OBJECT_DETECTION_MAPPING_NAMES:
        raise CheckerFilesError(
            folder, f"a {model_type!r} detector, which the placement check does not run: use OWLv2 or Grounding DINO"
        )
    raise CheckerFilesError(
        folder, f"a {model_type!r} model, not an open-vocabulary detector (OWLv2 or Grounding DINO)"
    )


def _safe_weights(folder: Path) -> tuple[Path, ...]:
    """The safetensors weight files (one file or an index's shards), each with a readable header."""
    from engine.weights_io import WeightFileError, read_safetensors_metadata

    if (folder / SAFE_WEIGHTS).is_file():
        files = [folder / SAFE_WEIGHTS]
    elif (folder / SAFE_INDEX).is_file():
        try:
            index = json.loads((folder / SAFE_INDEX).read_text(encoding="utf-8"))
            files = [folder / name for name in sorted(set(index["weight_map"].values()))]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CheckerFilesError(folder, f"{SAFE_INDEX} cannot be read ({_first_line(exc)})") from None
    else:
        pickled = next((name for name in PICKLED_WEIGHTS if (folder / name).exists()), None)
        if pickled is not None:
            raise CheckerFilesError(
                folder,
                f"its weights are pickled ({pickled}), which the app never loads: save the model again with "
                "save_pretrained(folder, safe_serialization=True)",
            )
        raise CheckerFilesError(folder, f"no weights ({SAFE_WEIGHTS})")
    for file in files:
        try:
            read_safetensors_metadata(file)
        except WeightFileError as exc:
            raise CheckerFilesError(folder, f"{file.name}: {exc.reason}") from None
    return tuple(files)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
