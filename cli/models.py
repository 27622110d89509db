"""`models`: list, verify and set the configured model files; convert the official checkpoint once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.common import EXIT_FAILED, EXIT_OK, CommandError, load_model_settings, model_settings_path, models_dir

if TYPE_CHECKING:
    from engine.model_settings import ModelSettings


def _check_models(settings: ModelSettings) -> list[tuple[str, str, bool]]:
    """(part, how it stands, fine) for each part of the model settings; reads hashes and layouts, not weights."""
    from engine.model_check import check_model_settings

    rows: list[tuple[str, str, bool]] = []
    for check in check_model_settings(settings):
        # One line per part, so scripts can grep it: for a problem, what to do follows what is wrong.
        advice = [] if check.ok else [text for text in (check.hint, check.command and f"`{check.command}`") if text]
        rows.append((check.part, "; ".join([check.message, *advice]), check.ok))
    return rows


def cmd_models_list(args: argparse.Namespace) -> int:
    settings = load_model_settings()
    print(f"settings: {model_settings_path()}")
    for what, state, _fine in _check_models(settings):
        print(f"  {what:<8} {state}")
    for title, named in (("fine-tuned bases", settings.bases), ("LoRAs", settings.loras)):
        if named:
            print(f"{title}:")
            for name, path in sorted(named.items()):
                print(f"  {name:<16} {path}")
    print(f"low memory: {'on' if settings.low_memory else 'off'}")
    if settings.checker is None:  # when set, its check is one of the rows above
        print("placement checker: not set (only the demo model's renders are checked)")
    adapters = sorted(models_dir().glob("*.adapter.safetensors")) if models_dir().is_dir() else []
    if adapters:
        print(f"converted adapters in {models_dir()}:")
        for adapter in adapters:
            print(f"  {adapter.name}")
    return EXIT_OK


def cmd_models_verify(args: argparse.Namespace) -> int:
    rows = _check_models(load_model_settings())
    for what, state, fine in rows:
        print(f"{'ok' if fine else 'PROBLEM':<8} {what:<8} {state}")
    return EXIT_OK if all(fine for _what, _state, fine in rows) else EXIT_FAILED


def cmd_models_set(args: argparse.Namespace) -> int:
    import dataclasses

    from engine.model_settings import ModelSettingsError

    settings = load_model_settings()
    changes: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("sd15", "adapter", "device", "dtype", "checker")
        if getattr(args, name, None) is not None
    }
    for name in ("sd15", "adapter", "checker"):
        if name in changes:  # taken as text: Path("") would be "." and could not unset
            text = str(changes[name]).strip()
            changes[name] = Path(text).expanduser().absolute() if text else None
    for key, option in (("bases", "base"), ("loras", "lora")):
        items: list[str] = getattr(args, option, None) or []
        if items:
            changes[key] = _named_changes(dict(getattr(settings, key)), items, option)
    if getattr(args, "low_memory", None) is not None:
        changes["low_memory"] = args.low_memory == "on"
    if not changes:
        raise CommandError(
            "nothing to set: give --sd15, --adapter, --device, --dtype, --base, --lora, --low-memory or --checker"
        )
    try:
        settings = dataclasses.replace(settings, **changes)
        model_settings_path().parent.mkdir(parents=True, exist_ok=True)
        settings.save(model_settings_path())
    except (ValueError, ModelSettingsError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"saved {model_settings_path()}")
    return cmd_models_verify(args)


def _named_changes(current: dict[str, Path], given: list[str], option: str) -> dict[str, Path]:
    """Apply `--base NAME=PATH` / `--lora NAME=PATH` options; `NAME=` removes that name."""
    for item in given:
        name, equals, path = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise CommandError(f"--{option} takes NAME=PATH (NAME= removes it), not {item!r}")
        if path:
            current[name] = Path(path).expanduser().absolute()
        elif current.pop(name, None) is None:
            raise CommandError(f"--{option} {item}: there is no {option} called {name!r}")
    return current


def cmd_models_convert(args: argparse.Namespace) -> int:
    """Convert the official InstanceDiffusion .pth once into a safetensors adapter with a manifest."""
    from engine.checkpoint import convert_official_checkpoint, manifest_path
    from engine.models.builder import InstanceUNetConfig
    from engine.weights_io import WeightFileError

    out: Path = args.out or models_dir() / f"{args.path.stem}.adapter.safetensors"
    if out.exists() and not args.force:
        raise CommandError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"reading {args.path} (weights only; no code in it is run)...", flush=True)
    try:
        manifest = convert_official_checkpoint(args.path, out, InstanceUNetConfig())
    except WeightFileError as exc:
        raise CommandError(str(exc)) from exc
    print(f"wrote {out}: {manifest.tensors} tensors, {manifest.parameters:,} parameters")
    print(f"manifest {manifest_path(out)} (adapter sha256 {manifest.adapter_sha256[:16]}...)")
    settings = load_model_settings()
    if settings.adapter is None:
        import dataclasses

        dataclasses.replace(settings, adapter=out.absolute()).save(model_settings_path())
        print(f"set as the adapter in {model_settings_path()}")
    return EXIT_OK
