"""Instance Studio: with no arguments, the GUI; with a subcommand, the same work headless (see cli/).

Exit codes: 0 success, 1 the command failed (one line on stderr says why), 2 bad usage.

This is the entry point (`python main.py`, and the installed `instance-studio`). It is the only place
outside desktop/ that imports the desktop package, and only when the GUI opens: the headless commands
never load Qt.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine.offline import enforce_offline

# Once, before anything imports huggingface_hub, diffusers or transformers: this app never downloads.
enforce_offline()

from cli.common import CommandError, data_dir, model_settings_path  # noqa: E402
from cli.entry import run  # noqa: E402
from cli.parser import build_parser as _build_parser  # noqa: E402

__all__ = ["build_parser", "cmd_gui", "data_dir", "main", "model_settings_path"]


def cmd_gui(args: argparse.Namespace) -> int:
    if not has_display():
        # Qt would abort with a core dump; say what to do instead.
        raise CommandError("no display to open the window on; use a headless command (see --help)")
    from desktop.system_libraries import missing_for_gui, missing_from_import_error, needs_message

    missing = missing_for_gui()  # Qt would abort with a plugin error that names none of them
    if missing:
        raise CommandError(needs_message(missing))
    try:
        from desktop.app import run as run_app
    except ImportError as exc:
        library = missing_from_import_error(exc)
        if library is None:
            raise
        raise CommandError(needs_message([library])) from exc

    project = None if args.project is None else args.project.expanduser().absolute()
    if project is not None and not project.exists():
        raise CommandError(f"no such project: {project}")
    return run_app(sys.argv[:1], data_dir(), project, model_settings_path())


def has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def build_parser() -> argparse.ArgumentParser:
    return _build_parser(cmd_gui)


def main(argv: Sequence[str] | None = None) -> int:
    return run(argv, cmd_gui)


if __name__ == "__main__":
    sys.exit(main())
