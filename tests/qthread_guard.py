"""A fixture that fails any test which leaves a QThread or a background task running (it would outlive the test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QThread

from desktop import background

TASK_WAIT_S = 5.0  # how long a leaked background task gets to notice its cancellation before the next test


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
    # A task whose function still runs is a leak; one whose outcome merely waits in the event queue is
    # cancelled quietly, so that its callbacks cannot run in the middle of a later test. Tasks owned by the
    # application itself (the shared tokenizer load) live as long as it does, across tests.
    app = QCoreApplication.instance()
    tasks = [task for task in background.active_tasks() if app is None or not task.belongs_to(app)]
    leaked_tasks = [task for task in tasks if task.running]
    for task in tasks:
        task.cancel()
    for task in leaked_tasks:
        task.wait(TASK_WAIT_S)
    problems = []
    if leaked:
        names = ", ".join(type(t).__name__ + (f" {t.objectName()!r}" if t.objectName() else "") for t in leaked)
        problems.append(f"the test left {len(leaked)} QThread(s) running: {names}")
    if leaked_tasks:
        names = ", ".join(repr(task.name) for task in leaked_tasks)
        problems.append(f"the test left {len(leaked_tasks)} background task(s) running: {names}")
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
