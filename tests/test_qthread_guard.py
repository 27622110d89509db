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
