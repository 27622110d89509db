"""Where the demo model is read from, for the GUI and the render command alike: the bundled one, unless
INSTANCE_STUDIO_DEMO_MODEL points at a demo model you trained yourself. Imports no torch."""

from __future__ import annotations

import os
from pathlib import Path

from resources import resource_path

DEMO_MODEL_ENV = "INSTANCE_STUDIO_DEMO_MODEL"


def demo_model_dir() -> Path:
    override = os.environ.get(DEMO_MODEL_ENV)
    return Path(override) if override else resource_path("demo", "model")
