"""A lock file beside the project, so two running apps never write the same file.

The lock holds the owner's host and pid. A lock left by a process that no longer runs (a crash,
a kill) is stale and taken over; a lock from another host is respected, since we cannot tell.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from projects.errors import ProjectLockedError


def lock_path_for(project_path: Path) -> Path:
    return project_path.with_name(project_path.name + ".lock")


class ProjectLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._held = False

    @classmethod
    def acquire(cls, project_path: Path) -> ProjectLock:
        lock = cls(lock_path_for(project_path))
        lock._acquire(project_path)
        return lock

    def _acquire(self, project_path: Path) -> None:
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read_holder()
                if holder is not None and _holder_alive(holder):
                    raise ProjectLockedError(project_path, _describe(holder)) from None
                self.path.unlink(missing_ok=True)  # stale: its owner is gone
                continue
            try:
                os.write(fd, record)
            finally:
                os.close(fd)
            self._held = True
            return
        raise ProjectLockedError(project_path, "another process keeps recreating the lock file")

    def _read_holder(self) -> dict[str, object] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # empty or half-written: its writer died before finishing
        return data if isinstance(data, dict) else None

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    @property
    def held(self) -> bool:
        return self._held


def _describe(holder: dict[str, object]) -> str:
    return f"process {holder.get('pid')} on {holder.get('host')}"


def _holder_alive(holder: dict[str, object]) -> bool:
    pid, host = holder.get("pid"), holder.get("host")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return False
    if host != socket.gethostname():
        return True  # another machine (a shared drive): we cannot check, so respect it
    return _pid_alive(pid)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
