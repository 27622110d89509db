"""Short background work for the GUI: one helper, one private thread pool, every task cancellable and tracked.

    task = run_in_background(work, on_done=show, on_error=report, parent=dialog)

`work(control)` runs on a worker thread of a dedicated `QThreadPool` (not the global one, so "wait for
our tasks" means exactly that). Its result, or the exception it raised, comes back on the GUI thread:
the pool thread emits a signal of one relay object that lives on the GUI thread, and a queued
connection calls `on_done(result)` or `on_error(exception)` there. `control.report_progress(done,
total)` reaches `on_progress` the same way. Results travel as Python objects: hand back plain data,
never ORM objects or widgets. An exception's traceback keeps its lines but its frames' locals are
cleared before it leaves the worker, so nothing the function held crosses threads with it.

Stopping is cooperative. `task.cancel()` (call it on the GUI thread) guarantees that none of the task's
callbacks run afterwards, and sets the flag `control.is_cancelled()`, which a long loop (an export)
checks between steps; `task.request_stop()` only sets the flag, so the function's outcome (typically
its "cancelled" exception, after it cleaned up) is still delivered. A task with a `parent` QObject
delivers nothing once that object is deleted.

Every task is in a registry from the moment it is started until its function has returned and its
outcome was delivered (or it was cancelled): `active_tasks()`, `cancel_all()` and `wait_all(timeout)`
work on it, optionally only for the tasks of one widget and its children, which is how a window closes
(cancel, then wait, then close the project) and how the tests' guard finds a task a test left running.
A task whose parent is the application itself is process-wide (the shared tokenizer load): no window
selects it, and the guard lets it outlive a test. At interpreter exit everything left is cancelled and
waited for, briefly.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot

__all__ = [
    "BackgroundTask",
    "TaskControl",
    "active_tasks",
    "cancel_all",
    "run_in_background",
    "wait_all",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

MIN_THREADS: Final = 4  # a long export must not hold up a model check on a two-core machine
EXIT_WAIT_S: Final = 10.0  # at interpreter exit, how long cancelled functions get to return

_lock = threading.Lock()  # guards the registry and the lazily made pool and relay
_active: dict[int, BackgroundTask[Any]] = {}  # id(task) -> task, in start order
_pool: QThreadPool | None = None
_relay: _Relay | None = None


class TaskControl:
    """What the background function is given: the stop flag to check, and a progress line to the GUI."""

    def __init__(self, task: BackgroundTask[Any]) -> None:
        self._task = task

    @property
    def stop_event(self) -> threading.Event:
        """The flag itself, for code that waits on an event (`stop_event.wait(seconds)` as an interruptible sleep)."""
        return self._task._stop

    def is_cancelled(self) -> bool:
        """True once the task was cancelled or asked to stop: return (or raise) soon, leaving nothing half done."""
        return self._task._stop.is_set()

    def report_progress(self, done: int, total: int) -> None:
        """Hand `(done, total)` to the task's `on_progress` on the GUI thread (dropped once the task is cancelled)."""
        if not self._task._silenced:
            _require_relay().progress.emit(self._task, done, total)


class BackgroundTask(Generic[T]):
    """One started call of `run_in_background`. Its methods are for the GUI thread unless they say otherwise."""

    def __init__(
        self,
        fn: Callable[[TaskControl], T],
        on_done: Callable[[T], None],
        on_error: Callable[[BaseException], None] | None,
        on_progress: Callable[[int, int], None] | None,
        parent: QObject | None,
        name: str,
    ) -> None:
        self.name = name
        self._fn = fn
        self._on_done = on_done
        self._on_error = on_error
        self._on_progress = on_progress
        self._parent = None if parent is None else weakref.ref(parent)
        self._stop = threading.Event()  # the function is asked to stop
        self._returned = threading.Event()  # the function has returned or raised (or was skipped)
        self._silenced = False  # no callback may run any more
        self._delivered = False  # on_done or on_error was called (or would have been, had it not been silenced)

    def __repr__(self) -> str:
        state = "running" if self.running else "finished"
        return f"<BackgroundTask {self.name!r} {state}{', cancelled' if self._silenced else ''}>"

    @property
    def running(self) -> bool:
        """True until the function has returned (queued but not started counts as running). Any thread."""
        return not self._returned.is_set()

    @property
    def cancelled(self) -> bool:
        return self._silenced

    def cancel(self) -> None:
        """Ask the function to stop, and make sure none of the callbacks runs from now on."""
        self._silenced = True
        self._stop.set()
        _forget_if_settled(self)

    def request_stop(self) -> None:
        """Ask the function to stop, but still deliver what it returns or raises (a Cancel button's "stopped")."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the function has returned; True if it has. Callbacks still need the event loop."""
        return self._returned.wait(timeout)

    def belongs_to(self, owner: QObject) -> bool:
        """Whether the task's parent is `owner` or inside it (a child, grandchild, ...)."""
        obj = self._parent() if self._parent is not None else None
        while obj is not None and shiboken6.isValid(obj):
            if obj is owner:
                return True
            obj = obj.parent()
        return False

    # --- on the pool thread ----------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._silenced:
                return  # cancelled before a thread was free: do not start it at all
            try:
                result = self._fn(TaskControl(self))
            except Exception as exc:
                _clear_frames(exc)
                if not self._silenced:
                    _require_relay().failed.emit(self, exc)
            else:
                if not self._silenced:
                    _require_relay().done.emit(self, result)
        finally:
            self._returned.set()
            _forget_if_settled(self)

    # --- on the GUI thread (called by the relay) ---------------------------------------------

    def _deliver(self, call: Callable[[], None]) -> None:
        self._delivered = True
        try:
            if self._can_call():
                call()
        finally:
            _forget_if_settled(self)

    def _deliver_done(self, result: T) -> None:
        self._deliver(lambda: self._on_done(result))

    def _deliver_error(self, exc: BaseException) -> None:
        def call() -> None:
            if self._on_error is not None:
                self._on_error(exc)
            else:
                log.error("background task %r failed", self.name, exc_info=exc)

        self._deliver(call)

    def _deliver_progress(self, done: int, total: int) -> None:
        if self._on_progress is not None and self._can_call():
            self._on_progress(done, total)

    def _can_call(self) -> bool:
        if self._silenced:
            return False
        if self._parent is None:
            return True
        parent = self._parent()
        return parent is not None and shiboken6.isValid(parent)


class _Relay(QObject):
    """Lives on the GUI thread; pool threads emit its signals, queued connections deliver them there."""

    done = Signal(object, object)  # task, result
    failed = Signal(object, object)  # task, exception
    progress = Signal(object, int, int)  # task, done, total

    def __init__(self) -> None:
        super().__init__()
        queued = Qt.ConnectionType.QueuedConnection
        self.done.connect(self._done, queued)
        self.failed.connect(self._failed, queued)
        self.progress.connect(self._progress, queued)

    @Slot(object, object)
    def _done(self, task: BackgroundTask[Any], result: object) -> None:
        task._deliver_done(result)

    @Slot(object, object)
    def _failed(self, task: BackgroundTask[Any], exc: BaseException) -> None:
        task._deliver_error(exc)

    @Slot(object, int, int)
    def _progress(self, task: BackgroundTask[Any], done: int, total: int) -> None:
        task._deliver_progress(done, total)


class _Runnable(QRunnable):
    def __init__(self, task: BackgroundTask[Any]) -> None:
        super().__init__()
        self._task = task

    def run(self) -> None:
        self._task._run()


def run_in_background(
    fn: Callable[[TaskControl], T],
    *,
    on_done: Callable[[T], None],
    on_error: Callable[[BaseException], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    parent: QObject | None = None,
    name: str = "",
) -> BackgroundTask[T]:
    """Run `fn(control)` on the background pool; its outcome comes back to `on_done`/`on_error` on the GUI thread.

    Without `on_error` a failure is logged with its traceback. `parent` ties the task to a widget: nothing
    is delivered once it is deleted, and `cancel_all(widget)`/`wait_all(..., widget)` select its tasks.
    Needs a running QCoreApplication (whose thread is "the GUI thread").
    """
    task: BackgroundTask[T] = BackgroundTask(
        fn, on_done, on_error, on_progress, parent, name or getattr(fn, "__qualname__", repr(fn))
    )
    pool = _require_pool()
    _require_relay()
    with _lock:
        _active[id(task)] = task
    pool.start(_Runnable(task))
    return task


def active_tasks(parent: QObject | None = None) -> list[BackgroundTask[Any]]:
    """The tasks still running or with an outcome not yet delivered (all, or those of `parent`), oldest first."""
    with _lock:
        tasks = list(_active.values())
    return tasks if parent is None else [task for task in tasks if task.belongs_to(parent)]


def cancel_all(parent: QObject | None = None) -> int:
    """Cancel every active task (or those of `parent`): no callback of theirs runs any more. Returns how many."""
    tasks = active_tasks(parent)
    for task in tasks:
        task.cancel()
    return len(tasks)


def wait_all(timeout: float | None = None, parent: QObject | None = None) -> bool:
    """Block until the functions of the active tasks (all, or those of `parent`) have returned; True if they have.

    Cancel them first when closing: a function only stops early if it checks `control.is_cancelled()`.
    Without `parent`, this waits for the whole pool to be idle.
    """
    if parent is None:
        with _lock:
            pool = _pool
        if pool is None:
            return True
        return pool.waitForDone(-1 if timeout is None else max(0, round(timeout * 1000)))
    deadline = None if timeout is None else time.monotonic() + timeout
    for task in active_tasks(parent):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not task.wait(left):
            return False
    return True


# --- internals ---------------------------------------------------------------------------------


def _require_pool() -> QThreadPool:
    global _pool
    with _lock:
        if _pool is None:
            _pool = QThreadPool()
            _pool.setObjectName("background")
            _pool.setMaxThreadCount(max(MIN_THREADS, QThread.idealThreadCount()))
        return _pool


def _require_relay() -> _Relay:
    global _relay
    with _lock:
        if _relay is None:
            app = QCoreApplication.instance()
            if app is None:
                raise RuntimeError("background tasks need a QApplication: create it first")
            relay = _Relay()
            relay.moveToThread(app.thread())  # deliveries go to the GUI thread, whichever thread made it
            _relay = relay
        return _relay


def _forget_if_settled(task: BackgroundTask[Any]) -> None:
    """Drop a task from the registry once its function returned and its outcome was delivered or silenced."""
    if task._returned.is_set() and (task._delivered or task._silenced):
        with _lock:
            _active.pop(id(task), None)


def _clear_frames(exc: BaseException) -> None:
    """Clear the locals of the frames in an exception's traceback (and its causes'), keeping the lines."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


@atexit.register
def _at_exit() -> None:
    """Cancel whatever is left and let the functions return while the interpreter is still whole."""
    cancel_all()
    wait_all(EXIT_WAIT_S)
