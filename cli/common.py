"""What every command shares: exit codes, the one-line error, where data lives, logging, model settings."""

from __future__ import annotations

import codecs
import io
import logging
import logging.handlers
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Final

from engine.user_data import data_dir, model_settings_path
from engine.validation import escape_character

__all__ = ["data_dir", "model_settings_path"]  # where data lives, re-exported for the commands and main.py

if TYPE_CHECKING:
    from engine.model_settings import ModelSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure to report as one line and exit code 1."""


# File names may hold bytes that are not UTF-8, which Python keeps as lone surrogates; printed or
# logged, they would raise (a "--- Logging error ---" traceback). This error handler writes them as
# `\xff` instead, and anything else a stream cannot encode as a backslash escape.
ESCAPE_ERRORS: Final = "instance-studio-escape"


def _escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    return "".join(map(escape_character, error.object[error.start : error.end])), error.end


codecs.register_error(ESCAPE_ERRORS, _escape)


def escape_unprintable_output() -> None:
    """Make stdout and stderr write what they cannot encode as escapes instead of raising."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors=ESCAPE_ERRORS)


def models_dir() -> Path:
    return data_dir() / "models"


def load_model_settings() -> ModelSettings:
    from engine.model_settings import ModelSettings, ModelSettingsError

    try:
        return ModelSettings.load(model_settings_path(), missing_ok=True)
    except ModelSettingsError as exc:
        raise CommandError(str(exc)) from exc


def configure_logging(verbose: bool) -> Path:
    """Log to a rotating file always, and to the console with --verbose. Returns the log file."""
    log_dir = data_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "instance-studio.log"
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_instance_studio", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8", errors=ESCAPE_ERRORS
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [file_handler]
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handlers.append(console)
    for handler in handlers:
        handler._instance_studio = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # it narrates every plugin at INFO
    return log_file


@contextmanager
def ctrl_c_stops(*stops: Callable[[], None]) -> Iterator[None]:
    """While inside, Ctrl-C calls each of `stops` (stop the render, say so) instead of raising
    KeyboardInterrupt; the previous handler is back afterwards."""
    import signal

    def on_interrupt(_signal: int, _frame: object) -> None:
        for stop in stops:
            stop()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
