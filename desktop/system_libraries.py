"""Before the window opens on Linux: the system libraries Qt needs, named as packages to install.

PySide6 brings Qt, but Qt's X11 platform plugin (xcb) loads system libraries that a fresh Debian, Ubuntu
or Fedora may lack (libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, ...). Without one, QApplication
aborts with a long plugin error that names none of them. So `main.py` asks here first, and a missing
library becomes one line that names the package and the command that installs it.

Standard library only: this runs before anything imports Qt (and the headless commands never do).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["SystemLibrary", "missing_for_gui", "missing_from_import_error", "needs_message"]


@dataclass(frozen=True)
class SystemLibrary:
    soname: str  # what the dynamic loader looks for
    debian: str  # the Debian/Ubuntu package that has it
    fedora: str  # the Fedora package that has it


# What Qt's xcb platform plugin (plugins/platforms/libqxcb.so and libQt6XcbQpa) links beyond Qt's own
# libraries and the C/C++ runtime; tests/desktop/test_system_libraries.py checks this list against the
# installed plugin. The README's apt and dnf lines install all of them.
XCB_LIBRARIES: tuple[SystemLibrary, ...] = (
    SystemLibrary("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor"),
    SystemLibrary("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm"),
    SystemLibrary("libxcb-keysyms.so.1", "libxcb-keysyms1", "xcb-util-keysyms"),
    SystemLibrary("libxcb-image.so.0", "libxcb-image0", "xcb-util-image"),
    SystemLibrary("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil"),
    SystemLibrary("libxcb-util.so.1", "libxcb-util1", "xcb-util"),
    SystemLibrary("libxcb-xkb.so.1", "libxcb-xkb1", "libxcb"),
    SystemLibrary("libxcb-randr.so.0", "libxcb-randr0", "libxcb"),
    SystemLibrary("libxcb-shape.so.0", "libxcb-shape0", "libxcb"),
    SystemLibrary("libxcb-shm.so.0", "libxcb-shm0", "libxcb"),
    SystemLibrary("libxcb-sync.so.1", "libxcb-sync1", "libxcb"),
    SystemLibrary("libxcb-xfixes.so.0", "libxcb-xfixes0", "libxcb"),
    SystemLibrary("libxcb-render.so.0", "libxcb-render0", "libxcb"),
    SystemLibrary("libxcb.so.1", "libxcb1", "libxcb"),
    SystemLibrary("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11"),
    SystemLibrary("libX11-xcb.so.1", "libx11-xcb1", "libX11-xcb"),
)

# What QtGui itself links (any platform). Importing PySide6 fails without one, so these are named when
# that import fails (`missing_from_import_error`), never guessed beforehand.
GUI_LIBRARIES: tuple[SystemLibrary, ...] = (
    SystemLibrary("libGL.so.1", "libgl1", "libglvnd-glx"),
    SystemLibrary("libEGL.so.1", "libegl1", "libglvnd-egl"),
    SystemLibrary("libxkbcommon.so.0", "libxkbcommon0", "libxkbcommon"),
    SystemLibrary("libfontconfig.so.1", "libfontconfig1", "fontconfig"),
    SystemLibrary("libfreetype.so.6", "libfreetype6", "freetype"),
    SystemLibrary("libglib-2.0.so.0", "libglib2.0-0", "glib2"),
    SystemLibrary("libgthread-2.0.so.0", "libglib2.0-0", "glib2"),
    SystemLibrary("libX11.so.6", "libx11-6", "libX11"),
    SystemLibrary("libdbus-1.so.3", "libdbus-1-3", "dbus-libs"),
)

_KNOWN = {lib.soname: lib for lib in (*XCB_LIBRARIES, *GUI_LIBRARIES)}
_CANNOT_OPEN = re.compile(r"(lib[\w.+-]*?\.so(?:\.\d+)*): cannot open shared object file")


def loadable(soname: str) -> bool:
    """Whether the dynamic loader finds `soname` where Qt's plugin would look for it."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def uses_xcb(environ: Mapping[str, str], platform: str) -> bool:
    """Whether Qt will open its window through X11 (xcb): Linux, an X display, no platform chosen, and not
    a Wayland session (where Qt takes its Wayland plugin). When unsure, no: a check must never stop a
    window that would have opened."""
    if platform != "linux" or environ.get("QT_QPA_PLATFORM") or not environ.get("DISPLAY"):
        return False
    return not (environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE") == "wayland")


def missing_for_gui(environ: Mapping[str, str] | None = None, platform: str | None = None) -> list[SystemLibrary]:
    """The libraries Qt's xcb plugin needs that this system lacks (none where xcb is not used)."""
    if not uses_xcb(os.environ if environ is None else environ, sys.platform if platform is None else platform):
        return []
    return [lib for lib in XCB_LIBRARIES if not loadable(lib.soname)]


def missing_from_import_error(error: ImportError) -> SystemLibrary | None:
    """The system library an `ImportError` of PySide6 says is missing ("libEGL.so.1: cannot open ...")."""
    match = _CANNOT_OPEN.search(str(error))
    if match is None:
        return None
    soname = match.group(1)
    return _KNOWN.get(soname, SystemLibrary(soname, "", ""))


def needs_message(missing: Sequence[SystemLibrary]) -> str:
    """One line: which libraries, the command that installs them here, and where the README says more.

    Packages are named as this system's package manager knows them (apt, else dnf); where neither is
    found, both commands are given."""
    has_apt, has_dnf = shutil.which("apt-get") is not None, shutil.which("dnf") is not None
    fedora = has_dnf and not has_apt
    names = list(dict.fromkeys((lib.fedora if fedora else lib.debian) or lib.soname for lib in missing))
    commands = []
    for wanted, tool, packages in (
        (has_apt or not has_dnf, "apt", [lib.debian for lib in missing]),
        (has_dnf or not has_apt, "dnf", [lib.fedora for lib in missing]),
    ):
        known = " ".join(dict.fromkeys(name for name in packages if name))
        if wanted and known:
            commands.append(f"sudo {tool} install {known}")
    what = f"the system {'library' if len(names) == 1 else 'libraries'} {', '.join(names)}"
    how = f" ({'; or '.join(commands)})" if commands else ""
    return f"Qt needs {what}{how}; see the README, 'System libraries for the window'"
