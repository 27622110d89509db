"""Test-wide setup: offscreen Qt, a private data folder, hypothesis profiles, the QThread guard."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before any Qt import: tests never need a screen.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Under pytest-xdist, each worker gets its share of the cores for torch (and for the children it starts):
# two workers each running torch's default one thread per core spin against each other, and a render takes
# ten times as long. Set before torch is imported.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _share = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ.setdefault("OMP_NUM_THREADS", str(_share))
    os.environ.setdefault("MKL_NUM_THREADS", str(_share))
# Logs and settings of the code under test go to a throwaway folder, never the user's.
_HOME = Path(tempfile.mkdtemp(prefix="instance-studio-tests-"))
os.environ["INSTANCE_STUDIO_HOME"] = str(_HOME)

from engine.offline import enforce_offline  # noqa: E402

# As main.py does, before huggingface_hub, diffusers or transformers are imported: tests never download.
enforce_offline()

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from tests.qthread_guard import no_qthread_left_running  # noqa: E402, F401

# Derandomized: CI runs the same examples every time (a red run can be rerun); "thorough" explores anew.
settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
OFFICIAL_DEMOS = REPO_ROOT / "resources" / "official-demos"


@pytest.fixture(scope="session")
def untrained_demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved demo-sized model with untrained weights: for plumbing (loading, rendering, the queue), not pictures."""
    import torch

    from engine.demo.model import DemoModelConfig, build_demo_components, save_demo

    folder = tmp_path_factory.mktemp("demo")
    torch.manual_seed(0)
    save_demo(build_demo_components(DemoModelConfig(), folder / "tok"), DemoModelConfig(), folder / "model")
    return folder / "model"


@pytest.fixture(autouse=True)
def qt_garbage_collected_on_the_gui_thread(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a Qt test, delete what it left (deferred deletes, reference cycles) here, on the GUI thread.

    Left to Python's cyclic GC, a Qt object in a cycle (a window and its controllers) would be destroyed on
    whichever thread allocates next — a project store's or a render thread — and Qt crashes there."""
    yield
    if not {"qtbot", "qapp"} & set(request.fixturenames):
        return
    from PySide6.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()
    gc.collect()


def pytest_sessionfinish() -> None:
    shutil.rmtree(_HOME, ignore_errors=True)
