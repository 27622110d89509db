"""Running one command: parse, log, dispatch, and turn every expected failure into one line on stderr.

Exit codes: 0 success, 1 the command failed (one line on stderr says why), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    CommandError,
    configure_logging,
    data_dir,
    escape_unprintable_output,
)
from cli.parser import Command, build_parser

log = logging.getLogger("instance_studio")


def run(argv: Sequence[str] | None, gui_command: Command) -> int:
    """Run the command `argv` names (the GUI, through `gui_command`, when it names none)."""
    escape_unprintable_output()  # before anything prints a file name
    parser = build_parser(gui_command)
    args = parser.parse_args(argv)
    if args.command is None:
        args.func, args.project = gui_command, None
    try:
        log_file = configure_logging(args.verbose)
    except OSError as exc:
        print(f"error: cannot write the log in {data_dir()}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    log.debug("command %s, log %s", args.command or "gui", log_file)

    from engine.request import RequestValidationError
    from projects.errors import ProjectError

    try:
        return int(args.func(args))
    except (CommandError, ProjectError, RequestValidationError) as exc:
        log.warning("%s failed: %s", args.command, exc)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`| head`); say nothing more on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        log.exception("%s failed", args.command)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
