"""A fixture that fails any test which leaves a QThread running (it would outlive the test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QThread


@pytest.fixture(autouse=True)
def no_qthread_left_running(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    started: list[QThread] = []
    original_start = QThread.start

    def tracking_start(self: QThread, *args: Any, **kwargs: Any) -> None:
        started.append(self)
        original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", tracking_start)
    yield
    leaked = []
    for thread in started:
        try:
            running = thread.isRunning()
        except RuntimeError:  # its C++ object is already gone, so it is not running
            continue
        if running:
            leaked.append(thread)
            thread.requestInterruption()
            thread.quit()
            thread.wait(5000)
    if leaked:
        names = ", ".join(type(t).__name__ + (f" {t.objectName()!r}" if t.objectName() else "") for t in leaked)
        pytest.fail(f"the test left {len(leaked)} QThread(s) running: {names}", pytrace=False)
