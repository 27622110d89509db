"""The shared token counter: one background load per process, handed out on the GUI thread."""

from __future__ import annotations

import logging
import threading

import pytest
from PySide6.QtCore import QCoreApplication, QObject, QThread
from pytestqt.qtbot import QtBot

from desktop.background import TaskControl, cancel_all
from desktop.preflight import TokenCounter
from desktop.token_counter import TokenCounterLoader, clip_tokenizer_path, load_clip_token_counter

TIMEOUT_MS = 60_000  # the real tokenizer imports transformers on a busy machine


def on_gui_thread() -> bool:
    app = QCoreApplication.instance()
    assert app is not None
    return QThread.currentThread() is app.thread()


class FakeLoad:
    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, control: TaskControl) -> TokenCounter:
        self.calls += 1
        self.gate.wait(10)
        return len


def test_one_load_serves_every_request_on_the_gui_thread(qtbot: QtBot) -> None:
    load = FakeLoad()
    load.gate.clear()
    loader = TokenCounterLoader(load)
    got: list[tuple[str, bool]] = []
    loader.request(lambda counter: got.append(("first", on_gui_thread())))
    loader.request(lambda counter: got.append(("second", on_gui_thread())))
    load.gate.set()
    qtbot.waitUntil(lambda: len(got) == 2, timeout=10_000)
    assert got == [("first", True), ("second", True)]
    later: list[int] = []
    loader.request(lambda counter: later.append(counter("four")))
    assert later == [4]  # already loaded: answered at once
    assert load.calls == 1
    assert loader.counter is len


def test_a_failed_load_is_logged_and_not_retried(qtbot: QtBot, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def broken(control: TaskControl) -> TokenCounter:
        calls.append(1)
        raise OSError("no tokenizer here")

    loader = TokenCounterLoader(broken)
    got: list[TokenCounter] = []
    with caplog.at_level(logging.WARNING, logger="desktop.token_counter"):
        loader.request(got.append)
        qtbot.waitUntil(lambda: "no token counting: no tokenizer here" in caplog.text, timeout=10_000)
    loader.request(got.append)
    qtbot.wait(20)
    assert got == [] and calls == [1]


def test_a_window_closed_during_the_load_is_skipped(qtbot: QtBot) -> None:
    class Window(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.counter: TokenCounter | None = None

        def ready(self, counter: TokenCounter) -> None:
            assert self.objectName() == ""  # a Qt call: it would raise on a deleted object
            self.counter = counter

    load = FakeLoad()
    load.gate.clear()
    loader = TokenCounterLoader(load)
    closed, open_ = Window(), Window()
    loader.request(closed.ready)
    loader.request(open_.ready)
    closed.deleteLater()
    qtbot.waitUntil(lambda: not _valid(closed), timeout=10_000)
    load.gate.set()
    qtbot.waitUntil(lambda: open_.counter is not None, timeout=10_000)


def test_a_cancelled_load_starts_again_on_the_next_request(qtbot: QtBot) -> None:
    load = FakeLoad()
    load.gate.clear()
    loader = TokenCounterLoader(load)
    got: list[TokenCounter] = []
    loader.request(got.append)
    qtbot.waitUntil(lambda: load.calls == 1, timeout=10_000)
    assert cancel_all() >= 1  # what the app does at exit
    load.gate.set()
    loader.request(got.append)
    qtbot.waitUntil(lambda: len(got) == 2, timeout=10_000)  # both, from the second load
    assert load.calls == 2


def test_the_bundled_tokenizer_counts_clip_tokens(qtbot: QtBot) -> None:
    assert clip_tokenizer_path().endswith("tokenizer")
    loader = TokenCounterLoader(load_clip_token_counter)
    got: list[TokenCounter] = []
    loader.request(got.append)
    qtbot.waitUntil(lambda: got != [], timeout=TIMEOUT_MS)
    count = got[0]
    assert count("a photo of a cat") == 7  # start, five words, end
    assert count("") == 2


def _valid(obj: QObject) -> bool:
    import shiboken6

    return shiboken6.isValid(obj)
