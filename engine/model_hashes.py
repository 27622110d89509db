"""SHA-256 of the weight files a model was loaded from, remembered per (path, size, mtime).

Every render's metadata names the files it was made with by hash; hashing a 4 GB checkpoint takes
seconds, so a file is hashed once per version of it (its size and modification time), not per load.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.weights_io import WeightFileMissingError, sha256_file

__all__ = ["file_sha256", "remember_sha256", "stat_key"]

_HASHES: dict[tuple[str, int, int], str] = {}
_HASHES_LOCK = threading.Lock()


def stat_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, size, mtime): what identifies one version of a file for the cache."""
    file = path.resolve()
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise WeightFileMissingError(path) from None
    return str(file), stat.st_size, stat.st_mtime_ns


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weight file, remembered per (path, size, mtime) so reloading never rehashes gigabytes."""
    key = stat_key(Path(path))
    with _HASHES_LOCK:
        cached = _HASHES.get(key)
    if cached is not None:
        return cached
    digest = sha256_file(key[0])
    with _HASHES_LOCK:
        _HASHES[key] = digest
    return digest


def remember_sha256(key: tuple[str, int, int], digest: str) -> None:
    """Record a digest computed elsewhere (e.g. while checking a file against its manifest) for `key`."""
    with _HASHES_LOCK:
        _HASHES[key] = digest
