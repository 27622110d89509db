"""Writing files so that a failure (a full disk, a crash) never leaves a partial file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A new empty file beside `path`, with the permissions a plain `open()` would give it.

    (mkstemp makes files private, 0600; the user's umask decides for the files we deliver.)
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)
    return Path(tmp_name)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it into place."""
    tmp_name = temporary_sibling(path)
    fd = os.open(tmp_name, os.O_WRONLY)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
