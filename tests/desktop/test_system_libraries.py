"""The check before the window opens: which system libraries Qt's X11 plugin needs, and the one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop.system_libraries import (
    XCB_LIBRARIES,
    missing_for_gui,
    missing_from_import_error,
    needs_message,
    uses_xcb,
)
from tests.conftest import REPO_ROOT


def test_the_check_imports_no_qt() -> None:
    code = "import sys, desktop.system_libraries; print(sorted(m for m in sys.modules if 'PySide6' in m))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({"DISPLAY": ":0"}, "linux", True),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "x11"}, "linux", True),
        ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}, "linux", False),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", False),
        ({"DISPLAY": ":0"}, "darwin", False),
    ],
)
def test_only_an_x11_window_is_checked(environ: dict[str, str], platform: str, expected: bool) -> None:
    assert uses_xcb(environ, platform) is expected


def test_missing_libraries_are_found_by_loading_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("desktop.system_libraries.loadable", lambda soname: "cursor" not in soname)
    assert [lib.debian for lib in missing_for_gui({"DISPLAY": ":0"}, "linux")] == ["libxcb-cursor0"]
    assert missing_for_gui({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux") == []


def test_a_missing_library_in_an_import_error_is_named() -> None:
    error = ImportError("libxkbcommon.so.0: cannot open shared object file: No such file or directory")
    library = missing_from_import_error(error)
    assert library is not None and library.debian == "libxkbcommon0"
    unknown = missing_from_import_error(ImportError("libfoo.so.3: cannot open shared object file"))
    assert unknown is not None and unknown.soname == "libfoo.so.3"
    assert "libfoo.so.3" in needs_message([unknown])
    assert missing_from_import_error(ImportError("No module named 'PySide6'")) is None


def ldd_libraries(path: Path) -> set[str]:
    proc = subprocess.run(["ldd", str(path)], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in proc.stdout.splitlines() if "=>" in line}


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("ldd") is None, reason="Linux with ldd only")
def test_the_list_matches_the_installed_xcb_plugin() -> None:
    """Every X11 library the installed plugin links is checked, and nothing it does not link (a check
    for a library Qt no longer needs would stop a window that opens)."""
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    needed = ldd_libraries(qt / "plugins" / "platforms" / "libqxcb.so")
    needed |= ldd_libraries(next((qt / "lib").glob("libQt6XcbQpa.so*")))
    x11 = {name for name in needed if name.startswith(("libxcb", "libxkbcommon-x11", "libX11-xcb"))}
    assert x11 == {lib.soname for lib in XCB_LIBRARIES}
