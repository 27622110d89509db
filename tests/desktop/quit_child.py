"""The app the quit test drives: the real GUI entry point (`desktop.app.run`) on a project, with a model
whose load takes far longer than closing waits (a model read from a slow disk), so quitting finds the
render engine in a call it cannot interrupt. The child renders, quits (File > Quit, Ctrl+Q) while the
model loads, and prints what the window tells the user.

    python -m tests.desktop.quit_child PROJECT HOME

The demo model comes from INSTANCE_STUDIO_DEMO_MODEL, as in the app.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

import desktop.render_thread
import engine.providers
from desktop.app import run
from desktop.main_window import MainWindow
from engine.runner import LoadedModel, ModelProvider

LOAD_S = 120.0  # the load that never ends while anyone waits
loading = threading.Event()


def slow_provider(*args: object, **kwargs: object) -> ModelProvider:
    provide = real_settings_provider(*args, **kwargs)  # type: ignore[arg-type]

    def slow(model_id: str) -> LoadedModel:
        model = provide(model_id)
        print("loading", flush=True)
        loading.set()
        time.sleep(LOAD_S)
        return model

    return slow


real_settings_provider = engine.providers.settings_provider


def drive() -> None:
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
    if not windows or windows[0].editor is None:
        QTimer.singleShot(50, drive)
        return
    window = windows[0]
    window.queue.message.connect(lambda text, _ms: print(f"message: {text}", flush=True))
    window.queue.shutdown_wait_ms = 500
    window.commands.render.trigger()

    def quit_when_loading() -> None:
        if not loading.is_set():
            QTimer.singleShot(50, quit_when_loading)
            return
        print("quitting", flush=True)
        # File > Quit, the action Ctrl+Q triggers (the offscreen platform binds no key to StandardKey.Quit).
        window.commands.quit.trigger()

    quit_when_loading()


def main() -> int:
    path, home = Path(sys.argv[1]), Path(sys.argv[2])
    engine.providers.settings_provider = slow_provider
    desktop.render_thread.EXIT_WAIT_MS = 1000
    app = QApplication([sys.argv[0]])
    QTimer.singleShot(0, drive)
    return run(app.arguments(), home, path)


if __name__ == "__main__":
    sys.exit(main())
