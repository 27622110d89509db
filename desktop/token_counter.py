"""CLIP's token counter for the 77-token pre-flight check: loaded once per process, off the GUI thread.

`request_token_counter(ready)` hands the counter to `ready` on the GUI thread: at once when it is already
loaded, else when the background load (transformers imports slowly) ends. Every window asks; one load
serves them all. The load is a background task owned by the application (not by a window), so closing
one window does not cancel it; `background.cancel_all()` at exit does, and then the next request starts
it again. A `ready` that is a method of a Qt object deleted meanwhile is skipped. If the tokenizer cannot
be loaded the check is a nicety: a warning is logged, `ready` is never called, and no later request
retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject

from desktop.background import BackgroundTask, TaskControl, run_in_background
from desktop.preflight import TokenCounter
from resources import resource_path

__all__ = ["TokenCounterLoader", "clip_tokenizer_path", "load_clip_token_counter", "request_token_counter"]

log = logging.getLogger(__name__)

Ready = Callable[[TokenCounter], None]


def clip_tokenizer_path() -> str:
    """The bundled SD1.5 (CLIP ViT-L/14) tokenizer folder."""
    return str(resource_path("sd15", "tokenizer"))


def load_clip_token_counter(control: TaskControl) -> TokenCounter:
    """Load the bundled tokenizer (on a background thread) and return a counter of a text's tokens,
    start and end tokens included, as the 77-token limit counts them."""
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(clip_tokenizer_path(), local_files_only=True)

    def count(text: str) -> int:
        return len(tokenizer(text).input_ids)

    return count


class TokenCounterLoader:
    """Loads a token counter once with `load` in the background and hands it to everyone who asks."""

    def __init__(self, load: Callable[[TaskControl], TokenCounter]) -> None:
        self._load = load
        self._counter: TokenCounter | None = None
        self._failed = False
        self._task: BackgroundTask[TokenCounter] | None = None
        self._waiting: list[Ready] = []

    @property
    def counter(self) -> TokenCounter | None:
        return self._counter

    def request(self, ready: Ready) -> None:
        """Call `ready(counter)` on the GUI thread, now or once loaded. Call this on the GUI thread."""
        if self._counter is not None:
            ready(self._counter)
            return
        if self._failed:
            return
        self._waiting.append(ready)
        if self._task is None or self._task.cancelled:
            app = QCoreApplication.instance()
            self._task = run_in_background(
                self._load, on_done=self._loaded, on_error=self._load_failed, parent=app, name="tokenizer"
            )

    def _loaded(self, counter: TokenCounter) -> None:
        self._counter = counter
        waiting, self._waiting = self._waiting, []
        for ready in waiting:
            owner = getattr(ready, "__self__", None)
            if isinstance(owner, QObject) and not shiboken6.isValid(owner):
                continue  # a window closed while the tokenizer loaded
            ready(counter)

    def _load_failed(self, exc: BaseException) -> None:
        log.warning("no token counting: %s", exc)
        self._failed = True
        self._waiting.clear()


_shared = TokenCounterLoader(load_clip_token_counter)


def request_token_counter(ready: Ready) -> None:
    """Hand CLIP's token counter to `ready` on the GUI thread once it is loaded (one load per process)."""
    _shared.request(ready)
