"""The editor layer loads no widget module: it can run under a QCoreApplication (import-linter cannot see
inside PySide6, so this checks what an import really loads)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_importing_the_editor_loads_no_widgets() -> None:
    probe = (
        "import sys, desktop.editor.scene_editor, desktop.editor.workbench, desktop.editor.connections; "
        "print(sorted(m for m in sys.modules if m.startswith('PySide6.QtWidgets') or m.startswith('desktop.canvas')"
        " or m.startswith('desktop.panels')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
