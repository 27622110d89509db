"""The process-wide offline switch for Hugging Face libraries, set once where a process starts.

The app never downloads: every load passes `local_files_only=True` (the real guarantee). These variables
are the second line: a library call that forgot it fails fast on a missing file instead of trying the
network (a hang on a machine without one), and nothing reports usage. Call `enforce_offline()` at the
entry point (main.py, the test conftest, the benchmarks) before huggingface_hub, diffusers or
transformers are imported; importing engine modules changes nothing in `os.environ`.
"""

from __future__ import annotations

import os
import sys
from typing import Final

__all__ = ["OFFLINE_ENVIRONMENT", "enforce_offline"]

OFFLINE_ENVIRONMENT: Final[dict[str, str]] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",  # diffusers' and transformers' own user-agent telemetry
    "DO_NOT_TRACK": "1",
}

# Modules that copy huggingface_hub's switches at their own import.
_COPIES: Final = ("huggingface_hub.constants", "diffusers.utils.hub_utils")


def enforce_offline() -> None:
    """Switch this process (and the processes it starts) to offline mode, with telemetry off.

    huggingface_hub reads its variables once, at its import; if it was imported already, its constants are
    set too, so calling this late still works.
    """
    os.environ.update(OFFLINE_ENVIRONMENT)
    for name in _COPIES:
        module = sys.modules.get(name)
        if module is not None:
            module.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
            module.HF_HUB_DISABLE_TELEMETRY = True  # type: ignore[attr-defined]
