"""Which checker reads a model's renders: the shape-world analyser for the demo model, the detector from the
checker folder in the model settings for every other model, or none.

A detector is loaded once per folder and device and kept for the life of the process (a second render, a
second project, the same checker object); a folder that fails to load is tried again next time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from engine.checkers.base import PlacementChecker
from engine.checkers.shape_world import ShapeWorldChecker
from engine.model_ids import DEMO
from engine.model_settings import ModelSettings

if TYPE_CHECKING:
    from engine.checkers.detector import DetectorChecker

__all__ = ["checker_for", "forget_loaded_detectors"]

_loaded: dict[tuple[Path, str], DetectorChecker] = {}
_lock = threading.Lock()


def checker_for(model_id: str, settings: ModelSettings | None) -> PlacementChecker | None:
    """The checker for renders of `model_id`; None when there is none. Loading a detector may raise
    CheckerFilesError (its folder is missing or holds no detector) or ValueError (an unusable device)."""
    if model_id == DEMO:
        return ShapeWorldChecker()
    if settings is None or settings.checker is None:
        return None
    from engine.devices import select_device

    # The detector runs where the model renders: the settings' device.
    device = str(select_device(settings.device))
    return _detector(settings.checker.expanduser().absolute(), device)


def _detector(folder: Path, device: str) -> DetectorChecker:
    from engine.checkers.detector import load_detector

    with _lock:  # two render threads asking at once load it once
        key = (folder, device)
        if key not in _loaded:
            _loaded[key] = load_detector(folder, device)
        return _loaded[key]


def forget_loaded_detectors() -> None:
    """Drop the kept detectors (their memory goes when no checker object is left)."""
    with _lock:
        _loaded.clear()
