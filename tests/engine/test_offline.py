"""Offline mode is set once, where a process starts (main.py, this test suite, the benchmarks), never as a
side effect of importing an engine module (issue 17)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from engine.offline import OFFLINE_ENVIRONMENT, enforce_offline
from tests.conftest import REPO_ROOT

# Everything that loads models, plus the modules split out of engine.loading.
ENGINE_MODULES = (
    "engine.loading",
    "engine.providers",
    "engine.model_check",
    "engine.model_configs",
    "engine.model_hashes",
    "engine.unet_loading",
    "engine.folder_loading",
    "engine.single_file",
    "engine.sd15_source",
    "engine.devices",
    "engine.checkers.detector",
    "engine.checkers.detector_files",
    "engine.checkers.selection",
)


def _run(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter whose environment holds none of the offline variables."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENVIRONMENT}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_importing_the_engine_changes_no_environment_variable() -> None:
    result = _run(
        f"""
        import importlib, json, os
        before = dict(os.environ)
        for name in {ENGINE_MODULES!r}:
            importlib.import_module(name)
        import huggingface_hub.constants as hub
        after = dict(os.environ)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        print(json.dumps({{"changed": changed, "hub_offline": hub.HF_HUB_OFFLINE}}))
        """
    )
    assert result == {"changed": [], "hub_offline": False}


def test_the_entry_point_switches_the_process_offline_before_the_libraries_load() -> None:
    """main.py (also what the installed `instance-studio` script imports) sets every variable first."""
    result = _run(
        """
        import json, os
        import main
        import huggingface_hub.constants as hub
        from diffusers.utils import hub_utils
        from engine.offline import OFFLINE_ENVIRONMENT
        env = {k: os.environ.get(k) for k in OFFLINE_ENVIRONMENT}
        print(json.dumps({"env": env, "hub": [hub.HF_HUB_OFFLINE, hub.HF_HUB_DISABLE_TELEMETRY],
                          "diffusers": [hub_utils.HF_HUB_OFFLINE, hub_utils.HF_HUB_DISABLE_TELEMETRY]}))
        """
    )
    assert result == {"env": OFFLINE_ENVIRONMENT, "hub": [True, True], "diffusers": [True, True]}


def test_the_test_suite_runs_offline() -> None:
    for name, value in OFFLINE_ENVIRONMENT.items():
        assert os.environ[name] == value, name
    import huggingface_hub.constants

    assert huggingface_hub.constants.is_offline_mode()


def test_switching_late_still_reaches_the_libraries_already_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants as hub
    from diffusers.utils import hub_utils

    for module in (hub, hub_utils):
        monkeypatch.setattr(module, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(module, "HF_HUB_DISABLE_TELEMETRY", False)
    for name in OFFLINE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    enforce_offline()
    assert (hub.HF_HUB_OFFLINE, hub.HF_HUB_DISABLE_TELEMETRY) == (True, True)
    assert (hub_utils.HF_HUB_OFFLINE, hub_utils.HF_HUB_DISABLE_TELEMETRY) == (True, True)
    assert {name: os.environ[name] for name in OFFLINE_ENVIRONMENT} == OFFLINE_ENVIRONMENT
