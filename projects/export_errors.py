"""Errors an export raises; each message is one line a user can act on.

Every failure is raised only after the export has removed what it had written (see
`projects.export.export_project`), so the messages can promise that nothing was left half-written.
"""

from __future__ import annotations

import errno
from pathlib import Path

from projects.errors import ProjectError

# A full disk, a full quota, or a file-size limit (RLIMIT_FSIZE): all mean "no room for this file".
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class ExportError(ProjectError):
    """Base of every export failure."""


class NothingToExportError(ExportError):
    """The selection holds no render (a scene without renders, an empty project, no ids)."""


class ExportCancelled(ExportError):
    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"the export was cancelled after {done} of {total} images; its files were removed")
        self.done = done
        self.total = total


class ExportDiskFullError(ExportError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the disk is full while writing {path}: nothing was left half-written "
            "(the files this export had written were removed); free some space and export again"
        )
        self.path = path


class ExportPermissionError(ExportError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"permission denied while writing {path}; choose a folder you can write to")
        self.path = path


class ExportDestinationError(ExportError):
    """The output path cannot be used: a file where a folder should go, a folder that is not empty, ..."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


def write_error(path: Path, exc: OSError) -> ExportError:
    """The export error for an OSError raised while writing `path`."""
    if exc.errno in _NO_ROOM:
        return ExportDiskFullError(path)
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM):
        return ExportPermissionError(path)
    if exc.errno == errno.EROFS:
        return ExportDestinationError(path, "the disk is read-only; choose another folder")
    return ExportError(f"cannot write {path}: {exc.strerror or exc}; nothing was left half-written")
