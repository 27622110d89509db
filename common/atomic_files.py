"""Writing files so that a failure (a full disk, a crash) never leaves a partial file behind.

Every write goes to a new temporary file beside the target, is flushed to disk, and is renamed over
the target with `os.replace`, so a reader sees the old file or the new one, never half of either. On
any failure the temporary file is removed and the old file is left as it was.

The temporary file is created with mode 0o666 and the operating system applies the umask (and any
default ACL), exactly as for a plain `open(path, "w")`; the process umask is never read, because
reading it means setting it, and another thread could create a file in between with no mask at all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Final

__all__ = ["PendingFile", "atomic_path", "write_bytes_atomic", "write_text_atomic"]

_CREATE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_NAME_ATTEMPTS: Final = 100


def _create_sibling(target: Path) -> tuple[Path, int]:
    """A new, empty file beside `target` (O_EXCL: never an existing file, never through a symlink),
    and the permission bits the OS gave it."""
    for _ in range(_NAME_ATTEMPTS):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(candidate, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return candidate, mode
    raise FileExistsError(f"could not create a temporary file beside {target}")


def _fsync_file(path: Path) -> None:
    # Opened for writing: Windows cannot flush a read-only handle.
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX only; a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class PendingFile:
    """A temporary file beside `target` that becomes `target` on `commit`, or disappears on `discard`.

    For writers that are not a `with` block (an archive built over many calls) or that must check
    something just before the rename. `path` exists (empty) as soon as this object does; let any
    library write it, then call exactly one of `commit` and `discard` (`discard` after `commit` is a
    no-op, so it can sit in a `finally`).
    """

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.target = Path(target)
        self.path, self._mode = _create_sibling(self.target)
        self._done = False

    def commit(self) -> None:
        """Flush the temporary file to disk and rename it over the target (removed if that fails)."""
        if self._done:
            raise RuntimeError(f"{self.target}: the temporary file was already committed or discarded")
        try:
            # A library may have replaced the file with its own (safetensors writes a private 0600 file
            # and renames it): give it back the permissions the OS chose for ours.
            if stat.S_IMODE(os.stat(self.path).st_mode) != self._mode:
                os.chmod(self.path, self._mode)
            _fsync_file(self.path)
            os.replace(self.path, self.target)
        except BaseException:
            self.discard()
            raise
        self._done = True
        _fsync_directory(self.target.parent)

    def discard(self) -> None:
        """Remove the temporary file; the target is left as it was."""
        if not self._done:
            self._done = True
            self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `target` to write; it replaces `target` when the block ends.

    If the block raises, the temporary file is removed and `target` is untouched. For libraries that
    write a file by name (safetensors' `save_file`, an SQLite backup, a zip writer). A library that
    replaces the file rather than writing it is fine too: the permission bits are put back to those
    the OS gave the temporary file before the rename.
    """
    pending = PendingFile(target)
    try:
        yield pending.path
    except BaseException:
        pending.discard()
        raise
    pending.commit()


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Replace `target` with `data`, whole or not at all."""
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def write_text_atomic(target: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Replace `target` with `text`, whole or not at all (newlines written as `open(path, "w")` would)."""
    with atomic_path(target) as tmp, open(tmp, "w", encoding=encoding) as handle:
        handle.write(text)
