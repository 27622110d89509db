import pytest

from tests.conftest import REPO_ROOT

LEAKY = """
from PySide6.QtCore import QThread

class Spinner(QThread):
    def run(self):
        while not self.isInterruptionRequested():
            self.msleep(5)

def test_leaks(qapp):
    thread = Spinner()
    thread.setObjectName("spinner")
    thread.start()
    test_leaks.thread = thread  # keep it alive past the test

def test_tidy(qapp):
    thread = Spinner()
    thread.start()
    thread.requestInterruption()
    thread.wait()
"""


def test_a_test_that_leaves_a_qthread_running_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    pytester.makeconftest("from tests.qthread_guard import no_qthread_left_running  # noqa: F401\n")
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-o", "qt_api=pyside6")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*the test left 1 QThread(s) running: Spinner 'spinner'*"])


LEAKY_TASK = """
import threading

from desktop.background import run_in_background

release = threading.Event()

def spin(control):
    while not control.is_cancelled() and not release.is_set():
        control.stop_event.wait(0.005)

def test_leaks(qapp):
    run_in_background(spin, on_done=lambda _: None, name="spinner")

def test_the_leak_was_stopped(qapp):
    from desktop.background import active_tasks
    assert active_tasks() == []

def test_tidy(qapp, qtbot):
    done = []
    run_in_background(lambda control: 42, on_done=done.append)
    qtbot.waitUntil(lambda: done == [42])

def test_a_cancelled_task_that_finished_is_fine(qapp):
    task = run_in_background(lambda control: 42, on_done=lambda _: None)
    task.cancel()
    assert task.wait(5)

def test_a_task_of_the_application_may_outlive_the_test(qapp):
    run_in_background(spin, on_done=lambda _: None, parent=qapp, name="app-wide")  # cancelled at exit
"""


def test_a_test_that_leaves_a_background_task_running_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    pytester.makeconftest("from tests.qthread_guard import no_qthread_left_running  # noqa: F401\n")
    pytester.makepyfile(test_leaky_task=LEAKY_TASK)
    result = pytester.runpytest_subprocess("-o", "qt_api=pyside6")
    result.assert_outcomes(passed=5, errors=1)
    result.stdout.fnmatch_lines(["*the test left 1 background task(s) running: 'spinner'*"])
