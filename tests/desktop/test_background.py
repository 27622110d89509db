"""The background helper: outcomes on the GUI thread, cancellation both ways, the registry and waiting."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QCoreApplication, QObject, QThread
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from desktop import background
from desktop.background import TaskControl, active_tasks, cancel_all, run_in_background, wait_all

TIMEOUT_S = 10.0
TIMEOUT_MS = 10_000


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Released at the end of the test whatever happens, so no blocked function outlives it."""
    event = threading.Event()
    yield event
    event.set()
    assert wait_all(TIMEOUT_S)


def on_gui_thread() -> bool:
    app = QCoreApplication.instance()
    assert app is not None
    return QThread.currentThread() is app.thread()


def test_the_result_comes_back_on_the_gui_thread(qtbot: QtBot, qapp: QApplication) -> None:
    ran_on: list[bool] = []
    delivered: list[tuple[int, bool]] = []

    def work(control: TaskControl) -> int:
        ran_on.append(on_gui_thread())
        return 42

    task = run_in_background(work, on_done=lambda result: delivered.append((result, on_gui_thread())))
    qtbot.waitUntil(lambda: delivered != [], timeout=TIMEOUT_MS)
    assert ran_on == [False]
    assert delivered == [(42, True)]
    assert not task.running and task not in active_tasks()


def test_an_exception_goes_to_on_error_on_the_gui_thread_with_its_frames_cleared(qtbot: QtBot) -> None:
    errors: list[tuple[BaseException, bool]] = []
    done: list[object] = []

    def work(control: TaskControl) -> None:
        held = object()  # a local that must not travel to the GUI thread with the traceback
        raise ValueError(f"bad value {id(held)}")

    run_in_background(work, on_done=done.append, on_error=lambda exc: errors.append((exc, on_gui_thread())))
    qtbot.waitUntil(lambda: errors != [], timeout=TIMEOUT_MS)
    ((exc, gui),) = errors
    assert isinstance(exc, ValueError) and "bad value" in str(exc) and gui
    assert done == []
    tb = exc.__traceback__
    assert tb is not None
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == "work" and "held" not in tb.tb_frame.f_locals


def test_without_on_error_a_failure_is_logged(qtbot: QtBot, caplog: pytest.LogCaptureFixture) -> None:
    def work(control: TaskControl) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="desktop.background"):
        task = run_in_background(work, on_done=lambda _: None, name="exploding")
        qtbot.waitUntil(lambda: task not in active_tasks(), timeout=TIMEOUT_MS)
    assert "'exploding' failed" in caplog.text and "RuntimeError: boom" in caplog.text


def test_cancel_means_no_callback_runs(qtbot: QtBot, gate: threading.Event) -> None:
    called: list[str] = []

    def work(control: TaskControl) -> str:
        control.report_progress(1, 2)
        gate.wait(TIMEOUT_S)
        control.report_progress(2, 2)
        return "done"

    task = run_in_background(
        work,
        on_done=lambda _: called.append("done"),
        on_error=lambda _: called.append("error"),
        on_progress=lambda *_: called.append("progress"),
    )
    task.cancel()  # the first progress report may already be queued: it must not arrive either
    assert task.cancelled
    gate.set()
    assert task.wait(TIMEOUT_S)
    qtbot.wait(50)  # let anything queued reach the GUI thread
    assert called == []
    assert task not in active_tasks()


def test_the_function_sees_the_cancellation(qtbot: QtBot) -> None:
    steps: list[int] = []

    def work(control: TaskControl) -> None:
        while not control.is_cancelled():
            steps.append(len(steps))
            control.stop_event.wait(0.005)

    task = run_in_background(work, on_done=lambda _: None)
    qtbot.waitUntil(lambda: len(steps) > 2, timeout=TIMEOUT_MS)
    task.cancel()
    assert task.wait(TIMEOUT_S)
    assert not task.running


def test_request_stop_still_delivers_the_outcome(qtbot: QtBot) -> None:
    errors: list[BaseException] = []

    def work(control: TaskControl) -> None:
        while not control.is_cancelled():
            control.stop_event.wait(0.005)
        raise InterruptedError("stopped, and cleaned up")

    task = run_in_background(work, on_done=lambda _: None, on_error=errors.append)
    task.request_stop()
    qtbot.waitUntil(lambda: errors != [], timeout=TIMEOUT_MS)
    assert isinstance(errors[0], InterruptedError) and not task.cancelled


def test_progress_arrives_in_order_before_the_result(qtbot: QtBot) -> None:
    seen: list[object] = []

    def work(control: TaskControl) -> str:
        for done in range(1, 6):
            control.report_progress(done, 5)
        return "end"

    def progress(done: int, total: int) -> None:
        assert on_gui_thread()
        seen.append((done, total))

    run_in_background(work, on_done=seen.append, on_progress=progress)
    qtbot.waitUntil(lambda: "end" in seen, timeout=TIMEOUT_MS)
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5), "end"]


def test_wait_all_waits_for_every_function(qtbot: QtBot, gate: threading.Event) -> None:
    tasks = [run_in_background(lambda control: gate.wait(TIMEOUT_S), on_done=lambda _: None) for _ in range(3)]
    assert not wait_all(0.05)  # they are all blocked
    assert all(task.running for task in tasks)
    assert set(map(id, tasks)) <= set(map(id, active_tasks()))
    gate.set()
    assert wait_all(TIMEOUT_S)
    assert not any(task.running for task in tasks)
    qtbot.waitUntil(lambda: not active_tasks(), timeout=TIMEOUT_MS)  # and then the outcomes are delivered


def test_a_task_cancelled_before_a_thread_is_free_never_starts(qtbot: QtBot, gate: threading.Event) -> None:
    threads = background._require_pool().maxThreadCount()
    blockers = [
        run_in_background(lambda control: gate.wait(TIMEOUT_S), on_done=lambda _: None) for _ in range(threads)
    ]
    started: list[bool] = []
    queued = run_in_background(lambda control: started.append(True), on_done=lambda _: None)
    queued.cancel()
    gate.set()
    assert wait_all(TIMEOUT_S)
    assert started == [] and not queued.running
    qtbot.waitUntil(lambda: not any(task in active_tasks() for task in blockers), timeout=TIMEOUT_MS)


def test_a_parent_selects_its_tasks_and_a_deleted_parent_gets_nothing(qtbot: QtBot, gate: threading.Event) -> None:
    window = QWidget()
    qtbot.addWidget(window)
    child = QObject(window)
    other = QObject()
    called: list[str] = []
    mine = run_in_background(
        lambda control: gate.wait(TIMEOUT_S), on_done=lambda _: called.append("mine"), parent=child
    )
    theirs = run_in_background(
        lambda control: gate.wait(TIMEOUT_S), on_done=lambda _: called.append("theirs"), parent=other
    )
    assert active_tasks(window) == [mine]
    assert not wait_all(0.05, window)
    assert cancel_all(window) == 1
    assert mine.cancelled and not theirs.cancelled

    run_in_background(lambda control: gate.wait(TIMEOUT_S), on_done=lambda _: called.append("orphan"), parent=other)
    other.deleteLater()
    qtbot.waitUntil(lambda: _deleted(other), timeout=TIMEOUT_MS)
    gate.set()
    assert wait_all(TIMEOUT_S, window) and wait_all(TIMEOUT_S)
    qtbot.wait(50)
    assert called == []  # "mine" was cancelled; "theirs" and "orphan" lost their parent
    assert not active_tasks()


def _deleted(obj: QObject) -> bool:
    import shiboken6

    return not shiboken6.isValid(obj)


def test_without_an_application_nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "_relay", None)
    monkeypatch.setattr(QCoreApplication, "instance", staticmethod(lambda: None))
    with pytest.raises(RuntimeError, match="QApplication"):
        run_in_background(lambda control: None, on_done=lambda _: None)
    assert not active_tasks()
