"""Errors the project layer raises; each message is one line a user can act on."""

from __future__ import annotations

from pathlib import Path


class ProjectError(Exception):
    """Base of every error about a project file."""


class ProjectNotFoundError(ProjectError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: no such project file")
        self.path = path


class ProjectExistsError(ProjectError):
    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: a file already exists there; choose another name")
        self.path = path


class NotAProjectError(ProjectError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not an Instance Studio project ({reason})")
        self.path = path


class CorruptProjectError(ProjectError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: the project file is damaged ({reason}); it was left untouched")
        self.path = path


class ProjectTooNewError(ProjectError):
    def __init__(self, path: Path, revision: str) -> None:
        super().__init__(f"{path}: written by a newer Instance Studio (schema {revision}); update the app to open it")
        self.path = path


class ProjectLockedError(ProjectError):
    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"{path}: already open in another Instance Studio ({holder}); close it there first")
        self.path = path


class ProjectBusyError(ProjectError):
    """Another program held the file's write lock for longer than we wait (a backup tool, an sqlite3 shell)."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"{path}: the project file is busy (another program is writing to it); try again when it is done"
        )
        self.path = path


class ProjectReadOnlyError(ProjectError):
    """A write to a project opened read-only (the file or its folder cannot be written)."""

    def __init__(self, path: Path, detail: str = "it can be viewed and exported, not changed") -> None:
        super().__init__(f"{path}: the project file is read-only: {detail}")
        self.path = path


class DiskFullError(ProjectError):
    """No room to write: the disk is full, or a file size limit (ulimit -f) was reached. SQLite rolled back."""

    def __init__(self, path: Path, reason: str = "the disk is full", remedy: str = "free some space") -> None:
        super().__init__(f"{path}: {reason}; nothing was written and the project is as it was: {remedy} and try again")
        self.path = path


class ProjectIOError(ProjectError):
    """The operating system failed a read or write of the file (not damage: SQLite rolled back)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: the project file could not be read or written ({reason}); it was left as it was")
        self.path = path


class QueueError(ProjectError):
    """An impossible queue transition, e.g. finishing a job that is not running."""


class SceneNotFoundError(ProjectError):
    pass


class LayoutFormatError(ProjectError):
    """A layout file (official JSON, ...) that cannot be read: names the file and the problem."""

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem
