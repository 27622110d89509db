"""Where an export's files go: a folder or one zip file, written so that a failure leaves nothing behind.

A folder export writes each file atomically (a temporary sibling, then a rename) into a folder that
must be new or empty; `abort` removes every file it wrote and the folders it made. A zip export
writes the archive under a temporary name beside the target and renames it into place on `commit`;
`abort` deletes the temporary file. Either way an interrupted export leaves no partial file.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Final, Protocol

from common.atomic_files import PendingFile, write_bytes_atomic
from projects.export_errors import ExportDestinationError, write_error

# Already compressed: storing is as small and much faster than deflating again.
_STORED_SUFFIXES: Final = frozenset({".png", ".jpg", ".jpeg", ".webp"})


class ExportOutput(Protocol):
    """A destination for files given by relative POSIX paths (`images/a.png`)."""

    path: Path

    def write(self, relative: str, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


@contextmanager
def _translating_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise write_error(path, exc) from exc


def _checked(relative: str) -> PurePosixPath:
    """A relative path of our own making, checked anyway: it must stay inside the export."""
    parts = PurePosixPath(relative).parts
    if not parts or PurePosixPath(relative).is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a safe relative export path: {relative!r}")
    return PurePosixPath(*parts)


def _make_dirs(path: Path, created: list[Path]) -> None:
    """mkdir -p, remembering each folder it made (outermost first) so an abort can remove them."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with _translating_errors(folder):
            folder.mkdir()
        created.append(folder)


class FolderOutput:
    """Files in a folder that must not exist yet or be empty."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: list[Path] = []
        self._created: list[Path] = []
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise ExportDestinationError(path, "a file is in the way; choose a folder name for the export")
            with _translating_errors(path):
                if any(path.iterdir()):
                    raise ExportDestinationError(path, "the folder is not empty; choose a new or empty folder")
        _make_dirs(path, self._created)

    def write(self, relative: str, data: bytes) -> None:
        target = self.path.joinpath(*_checked(relative).parts)
        _make_dirs(target.parent, self._created)
        with _translating_errors(target):
            write_bytes_atomic(target, data)
        self._written.append(target)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        for file in reversed(self._written):
            with suppress(OSError):
                file.unlink(missing_ok=True)
        for folder in reversed(self._created):
            with suppress(OSError):
                folder.rmdir()
        self._written.clear()
        self._created.clear()


class ZipOutput:
    """One zip archive, built under a temporary name and renamed into place by `commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            raise ExportDestinationError(path, "a folder is in the way; choose a file name for the zip")
        if path.exists() or path.is_symlink():
            raise ExportDestinationError(path, "a file already exists there; choose another name")
        self._created: list[Path] = []
        _make_dirs(path.parent, self._created)
        with _translating_errors(path):
            self._tmp: PendingFile | None = PendingFile(path)
        self._zip: zipfile.ZipFile | None = zipfile.ZipFile(self._tmp.path, "w", allowZip64=True)
        self._stamp = dt.datetime.now().timetuple()[:6]

    def write(self, relative: str, data: bytes) -> None:
        assert self._zip is not None, "the zip was already committed or aborted"
        name = str(_checked(relative))
        info = zipfile.ZipInfo(name, date_time=self._stamp)
        info.external_attr = 0o644 << 16
        stored = PurePosixPath(name).suffix.lower() in _STORED_SUFFIXES
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        with _translating_errors(self.path):
            self._zip.writestr(info, data)

    def commit(self) -> None:
        assert self._zip is not None and self._tmp is not None, "the zip was already committed or aborted"
        with _translating_errors(self.path):
            self._zip.close()
            self._zip = None
            if self.path.exists():
                raise ExportDestinationError(
                    self.path, "a file appeared there during the export; nothing was replaced"
                )
            self._tmp.commit()
        self._tmp = None

    def abort(self) -> None:
        if self._zip is not None:
            with suppress(OSError, ValueError):
                self._zip.close()
            self._zip = None
        if self._tmp is not None:
            with suppress(OSError):
                self._tmp.discard()
            self._tmp = None
        for folder in reversed(self._created):
            with suppress(OSError):
                folder.rmdir()
        self._created.clear()


def open_output(path: Path, *, as_zip: bool) -> ExportOutput:
    return ZipOutput(path) if as_zip else FolderOutput(path)
