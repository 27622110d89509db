"""The app the quit and crash tests drive: the real GUI entry point (`desktop.app.run`) on a project, with a
model whose load takes far longer than closing waits (a model read from a slow disk), so the render
engine is in a call it cannot interrupt. The child renders, and while the model loads it either quits
(File > Quit, what Ctrl+Q triggers) or cancels the job with a click on the queue's cancel button and then
waits to be killed. It prints what happens and what the window tells the user.

    python -m tests.desktop.slow_model_child PROJECT HOME quit|cancel

The demo model comes from INSTANCE_STUDIO_DEMO_MODEL, as in the app.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

import desktop.render_thread
import engine.providers
from desktop.app import run
from desktop.main_window import MainWindow
from engine.runner import LoadedModel, ModelProvider

LOAD_S = 120.0  # the load that never ends while anyone waits
loading = threading.Event()
real_settings_provider = engine.providers.settings_provider


def slow_provider(*args: object, **kwargs: object) -> ModelProvider:
    provide = real_settings_provider(*args, **kwargs)  # type: ignore[arg-type]

    def slow(model_id: str) -> LoadedModel:
        model = provide(model_id)
        print("loading", flush=True)
        loading.set()
        time.sleep(LOAD_S)
        return model

    return slow


def later(condition: object, then: object) -> None:
    """Run `then` once `condition()` holds, polling from the event loop."""
    assert callable(condition) and callable(then)
    if condition():
        then()
    else:
        QTimer.singleShot(50, lambda: later(condition, then))


def drive(mode: str) -> None:
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
    if not windows or windows[0].editor is None:
        QTimer.singleShot(50, lambda: drive(mode))
        return
    window = windows[0]
    window.queue.message.connect(lambda text, _ms: print(f"message: {text}", flush=True))
    window.queue.shutdown_wait_ms = 500
    window.commands.render.trigger()
    panel = window.queue_panel

    def quit_app() -> None:
        print("quitting", flush=True)
        window.commands.quit.trigger()

    def cancel() -> None:
        item = panel.tree.topLevelItem(0)
        assert item is not None
        QTest.mouseClick(
            panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=panel.tree.visualItemRect(item).center()
        )
        QTest.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        print(f"cancel clicked: {panel.tree.topLevelItem(0).text(2)}", flush=True)  # type: ignore[union-attr]
        later(lambda: any(job.cancel_requested for job in panel.jobs), lambda: print("cancel stored", flush=True))

    if mode == "quit":
        later(loading.is_set, quit_app)
    else:
        later(lambda: loading.is_set() and bool(panel.jobs) and panel.jobs[0].status.value == "running", cancel)


def main() -> int:
    path, home, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    engine.providers.settings_provider = slow_provider
    desktop.render_thread.EXIT_WAIT_MS = 1000
    app = QApplication([sys.argv[0]])
    QTimer.singleShot(0, lambda: drive(mode))
    return run(app.arguments(), home, path)


if __name__ == "__main__":
    sys.exit(main())
