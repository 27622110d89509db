"""Atomic writes: the target is replaced whole or not at all, with the permissions a plain open() gives."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
import zipfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from common.atomic_files import PendingFile, atomic_path, write_bytes_atomic, write_text_atomic

posix_only = pytest.mark.skipif(os.name != "posix", reason="permission bits and umask are POSIX")


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bytes_replace_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "scene.json"
    target.write_text("old")
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert names(tmp_path) == ["scene.json"]


def test_text_is_written_like_open_would(tmp_path: Path) -> None:
    target = tmp_path / "settings.json"
    write_text_atomic(target, "caf\u00e9\n")
    with open(tmp_path / "plain.json", "w", encoding="utf-8") as handle:
        handle.write("caf\u00e9\n")
    assert target.read_bytes() == (tmp_path / "plain.json").read_bytes()


@posix_only
@pytest.mark.usefixtures("umask_027")
def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    write_bytes_atomic(tmp_path / "a.bin", b"x")
    write_text_atomic(tmp_path / "b.txt", "x")
    with atomic_path(tmp_path / "c.db") as tmp, closing(sqlite3.connect(tmp, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE t (x)")
    for name in ("a.bin", "b.txt", "c.db"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


@posix_only
@pytest.mark.usefixtures("umask_027")
def test_replacing_a_private_file_gives_ordinary_permissions(tmp_path: Path) -> None:
    target = tmp_path / "old.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_bytes_atomic(target, b"new")
    assert target.stat().st_mode & 0o777 == 0o640


def test_the_umask_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading it means setting it, which races with every other thread that creates a file."""

    def no_umask(_mask: int) -> int:
        raise AssertionError("os.umask was called")

    monkeypatch.setattr(os, "umask", no_umask)
    write_bytes_atomic(tmp_path / "a.bin", b"x")
    write_text_atomic(tmp_path / "b.txt", "x")
    with atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"x")
    assert names(tmp_path) == ["a.bin", "b.txt", "c.bin"]


def test_a_full_disk_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "scene.json"
    target.write_text("old")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(target, b"new" * 1000)
    assert target.read_text() == "old"
    assert names(tmp_path) == ["scene.json"]


def test_a_failure_mid_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def crash_mid_write() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        crash_mid_write()
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["model.safetensors"]


def test_a_failed_rename_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "models.json"
    target.write_text("old")

    def refuse(*_args: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert names(tmp_path) == ["models.json"]


def test_a_pending_file_is_a_sibling_that_appears_only_on_commit(tmp_path: Path) -> None:
    target = tmp_path / "export.zip"
    pending = PendingFile(target)
    assert pending.path.parent == tmp_path and pending.path.name.startswith(".export.zip.")
    with zipfile.ZipFile(pending.path, "w") as archive:
        archive.writestr("a.txt", "a")
    assert not target.exists()
    pending.commit()
    pending.discard()  # after a commit: nothing to do
    assert zipfile.ZipFile(target).read("a.txt") == b"a"
    assert names(tmp_path) == ["export.zip"]
    with pytest.raises(RuntimeError, match="already committed"):
        pending.commit()


def test_a_discarded_pending_file_leaves_nothing(tmp_path: Path) -> None:
    pending = PendingFile(tmp_path / "export.zip")
    pending.path.write_bytes(b"partial")
    pending.discard()
    assert names(tmp_path) == []


def test_a_missing_folder_is_an_error_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_bytes_atomic(tmp_path / "missing" / "file.bin", b"x")
    assert names(tmp_path) == []


def test_threads_writing_one_file_leave_one_whole_version(tmp_path: Path) -> None:
    target = tmp_path / "shared.bin"
    payloads = [bytes([i]) * 50_000 for i in range(8)]
    errors: list[BaseException] = []

    def writer(data: bytes) -> None:
        try:
            for _ in range(10):
                write_bytes_atomic(target, data)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert names(tmp_path) == ["shared.bin"]


@posix_only
@pytest.mark.usefixtures("umask_027")
def test_writing_never_changes_the_umask_other_threads_see(tmp_path: Path) -> None:
    """Reading the umask means setting it to 0 for a moment: a file made then would be world-writable."""
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            write_bytes_atomic(tmp_path / "busy.bin", b"x")

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        modes = set()
        for i in range(100):
            fd = os.open(tmp_path / f"plain{i}", os.O_WRONLY | os.O_CREAT, 0o666)
            os.close(fd)
            modes.add((tmp_path / f"plain{i}").stat().st_mode & 0o777)
    finally:
        stop.set()
        thread.join()
    assert modes == {0o640}


@posix_only
@pytest.mark.usefixtures("umask_027")
def test_a_library_that_replaces_the_temp_file_still_delivers_ordinary_permissions(tmp_path: Path) -> None:
    """safetensors writes its own private (0600) file and renames it over the path it was given."""
    with atomic_path(tmp_path / "weights.bin") as tmp:
        private = tmp.with_name("library-temp")
        private.write_bytes(b"weights")
        private.chmod(0o600)
        os.replace(private, tmp)
    assert (tmp_path / "weights.bin").stat().st_mode & 0o777 == 0o640
    assert names(tmp_path) == ["weights.bin"]
