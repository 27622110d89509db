"""Check the user's model settings without loading any weights: what the CLI's `models verify` and the settings
dialog show.

Every configured path is resolved with the same code the loader uses (`resolve_sd15`, `select_device`,
`select_dtype`), so a check that passes here means loading will find its files. Only small files are read
(configs, the adapter's manifest) plus the adapter's SHA-256, which `file_sha256` remembers per (path, size,
mtime): re-checking while the user edits a field never rehashes a gigabyte. No Qt here; the dialog runs this
on a worker thread, the CLI calls it directly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from engine.model_settings import ModelSettings

__all__ = ["PART_TITLES", "Check", "check_model_settings"]

# What each checked part is called where a user reads it (the CLI prints the short `part` instead).
PART_TITLES: Final[dict[str, str]] = {
    "sd15": "Stable Diffusion 1.5",
    "adapter": "InstanceDiffusion adapter",
    "device": "Device",
    "demo": "Demo model",
    "checker": "Placement checker",
}
SD15_CHOICES: Final = "a diffusers folder, a Hugging Face cache entry or a single .safetensors/.ckpt file"
CONVERT_COMMAND: Final = "python main.py models convert instancediffusion_sd15.pth"
CONVERT_HINT: Final = "convert the official checkpoint once, then choose the .safetensors file it writes"
CHECKER_COMMAND: Final = "python main.py models set --checker FOLDER"


@dataclass(frozen=True)
class Check:
    """How one part of the model settings stands.

    `part` is a short key ("sd15", "adapter", "device", "demo", "checker", "base:NAME" for a fine-tuned base);
    `message` says what was found, in words a
    user understands; `hint` (for problems) says what to do about it; `command` is the CLI command that does
    it, where there is one.
    """

    part: str
    message: str
    ok: bool
    hint: str = ""
    command: str = ""

    @property
    def title(self) -> str:
        if self.part.startswith("base:"):
            return f"Fine-tuned base “{self.part.removeprefix('base:')}”"
        return PART_TITLES.get(self.part, self.part)


def check_model_settings(settings: ModelSettings, *, demo_dir: Path | None = None) -> list[Check]:
    """One Check per part: SD1.5, the adapter, device and dtype, (with neither model set) the demo model, and
    the placement checker's folder when one is set.

    `demo_dir`: where the bundled demo model is (default: the app's own, `engine.providers.DEMO_MODEL_DIR`).
    Fast: no weights are loaded. Safe to call from any thread.
    """
    checks = [_check_sd15(settings.sd15), _check_adapter(settings.adapter), _check_device(settings)]
    # Each fine-tuned base is resolved as SD1.5 is: what `settings_provider` will load for its name.
    checks += [_check_source(f"base:{name}", path) for name, path in sorted(settings.bases.items())]
    if settings.sd15 is None and settings.adapter is None:
        checks.append(_check_demo(demo_dir))
    if settings.checker is not None:  # optional: without one, only the demo model's renders are checked
        checks.append(_check_checker(settings.checker))
    return checks


def _check_sd15(path: Path | None) -> Check:
    if path is None:
        return Check(
            "sd15", f"not set — choose {SD15_CHOICES}", False, command="python main.py models set --sd15 PATH"
        )
    return _check_source("sd15", path)


def _check_source(part: str, path: Path) -> Check:
    """SD1.5 or a fine-tuned base (same architecture, same layouts): its files are where loading looks."""
    # Imported here, not at the top: engine.sd15_source pulls in torch, and callers such as the
    # settings dialog should open at once and pay for that import on their worker thread.
    from engine.sd15_source import resolve_sd15
    from engine.weights_io import WeightFileError, WeightFileMissingError

    given = path.expanduser()
    try:
        source = resolve_sd15(given)
    except WeightFileMissingError as exc:
        if exc.path == given:
            return Check(part, f"not found: {given}", False, f"choose {SD15_CHOICES}")
        # Something inside the folder is missing: name that file; the loader's hint says what the folder needs.
        return Check(part, f"{exc.path} is missing", False, exc.hint or f"choose {SD15_CHOICES}")
    except WeightFileError as exc:
        return Check(part, str(exc), False, f"choose {SD15_CHOICES}")
    except OSError as exc:  # e.g. a folder we may not list
        return Check(part, f"cannot read {given}: {exc.strerror or exc}", False, "check the file permissions")
    kind = "diffusers" if source.kind == "diffusers" else "single file"
    return Check(part, f"{source.path} ({kind})", True)


def _check_adapter(path: Path | None) -> Check:
    from engine.checkpoint import manifest_path
    from engine.model_hashes import file_sha256
    from engine.weights_io import WeightFileError

    if path is None:
        return Check("adapter", "not set", False, CONVERT_HINT, CONVERT_COMMAND)
    adapter = path.expanduser()
    if not adapter.exists():
        return Check("adapter", f"file missing: {adapter}", False, CONVERT_HINT, CONVERT_COMMAND)
    if not adapter.is_file():
        return Check("adapter", f"not a file: {adapter}", False, CONVERT_HINT, CONVERT_COMMAND)
    if adapter.suffix.lower() != ".safetensors":
        # Most often the official .pth itself: it must be converted before it can be used.
        return Check(
            "adapter",
            f"not a converted adapter (expected a .safetensors file): {adapter}",
            False,
            CONVERT_HINT,
            CONVERT_COMMAND,
        )
    manifest = manifest_path(adapter)
    try:
        expected = json.loads(manifest.read_text(encoding="utf-8"))["adapter_sha256"]
    except FileNotFoundError:
        return Check(
            "adapter",
            f"{adapter}: its manifest {manifest.name} is missing, so the file cannot be verified",
            False,
            "convert the official checkpoint again (the manifest is written next to the adapter)",
            CONVERT_COMMAND,
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return Check(
            "adapter",
            f"{adapter}: its manifest {manifest.name} is unreadable ({exc})",
            False,
            "convert the official checkpoint again",
            CONVERT_COMMAND,
        )
    try:
        actual = file_sha256(adapter)
    except (OSError, WeightFileError) as exc:
        return Check("adapter", f"cannot read {adapter}: {exc}", False, "check the file permissions")
    if actual != expected:
        return Check(
            "adapter",
            f"{adapter}: SHA-256 does NOT match its manifest — the file changed since it was converted",
            False,
            "convert the official checkpoint again",
            CONVERT_COMMAND,
        )
    return Check("adapter", f"{adapter} (SHA-256 matches its manifest)", True)


def _check_device(settings: ModelSettings) -> Check:
    from engine.devices import select_device, select_dtype

    try:
        device = select_device(settings.device)
        dtype = select_dtype(device, settings.dtype)
    except ValueError as exc:  # the message already says what to choose instead
        return Check("device", str(exc), False)
    chosen = " (auto)" if "auto" in (settings.device, settings.dtype) else ""
    return Check("device", f"renders on {device} in {str(dtype).removeprefix('torch.')}{chosen}", True)


def _check_demo(demo_dir: Path | None) -> Check:
    if demo_dir is None:
        from engine.providers import DEMO_MODEL_DIR

        demo_dir = DEMO_MODEL_DIR
    config = demo_dir / "config.json"
    if config.is_file():
        return Check("demo", f"neither model is set, so renders use the bundled demo model ({demo_dir})", True)
    return Check(
        "demo",
        f"neither model is set, and the bundled demo model is missing from this copy of the app ({config})",
        False,
        "set Stable Diffusion 1.5 and an adapter, or reinstall Instance Studio",
    )


def _check_checker(folder: Path) -> Check:
    """The placement checker's folder: a zero-shot detector's config, processor files and safetensors
    weights (headers only; `engine.checkers.detector` loads the weights when a render is checked)."""
    from engine.checkers.detector_files import CHOOSE_HINT, CheckerFilesError, inspect_checker_folder

    try:
        files = inspect_checker_folder(folder)
    except CheckerFilesError as exc:
        return Check("checker", f"{exc.folder}: {exc.reason}", False, CHOOSE_HINT, CHECKER_COMMAND)
    except OSError as exc:  # e.g. a folder we may not list
        return Check("checker", f"cannot read {folder}: {exc.strerror or exc}", False, "check the file permissions")
    return Check("checker", f"{files.folder} ({files.title}, a zero-shot detector; reports say {files.name})", True)
