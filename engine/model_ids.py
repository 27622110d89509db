"""The model ids a scene can choose: the built-in "sd15" and "demo", and the fine-tuned bases configured in
the model settings, by name. Torch-free, so the GUI's model chooser can list them at once.
"""

from __future__ import annotations

from engine.demo import limits
from engine.model_settings import ModelSettings

__all__ = ["DEMO", "SD15", "available_model_ids", "unknown_model_message"]

SD15 = "sd15"
DEMO = limits.MODEL_ID


def available_model_ids(settings: ModelSettings | None) -> tuple[str, ...]:
    """ "sd15", "demo", then the configured bases in name order."""
    bases = sorted(settings.bases) if settings is not None else []
    return (SD15, DEMO, *bases)


def unknown_model_message(model_id: str, settings: ModelSettings | None) -> str:
    names = ", ".join(repr(name) for name in available_model_ids(settings))
    hint = (
        ""
        if settings is not None and settings.bases
        else ("; add a fine-tuned base with `main.py models set --base NAME=PATH`")
    )
    return f"unknown model {model_id[:64]!r}; the models are {names}{hint}"
