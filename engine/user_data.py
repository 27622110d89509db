"""Where the app keeps the user's own files (model settings, converted adapters, logs): INSTANCE_STUDIO_HOME,
else the platform's user data folder. One answer for every process: the commands, the window, and a render
worker on a cluster node (which reads its own node's model settings)."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    override = os.environ.get("INSTANCE_STUDIO_HOME")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("instance-studio", appauthor=False))


def model_settings_path() -> Path:
    return data_dir() / "models.json"
