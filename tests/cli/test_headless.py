"""The headless commands never import Qt: each runs in a child process in which PySide6 cannot be imported
(as on a server without the GUI's libraries), and must succeed there all the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.test_render import shapes_project
from tests.conftest import OFFICIAL_DEMOS, REPO_ROOT

# Runs main.py as `python main.py ARGS` would, with a finder in front of every other that refuses Qt and
# says so on stderr (a library that catches the ImportError must not hide that Qt was asked for).
WITHOUT_QT = """
import runpy, sys

class NoQt:
    asked = []

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("PySide6", "shiboken6"):
            NoQt.asked.append(name)
            raise ImportError(f"{name} is blocked: a headless command must not import Qt")
        return None

sys.meta_path.insert(0, NoQt())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    if NoQt.asked:
        print("Qt was imported: " + ", ".join(NoQt.asked), file=sys.stderr)
"""


@pytest.fixture
def run_without_qt(tmp_path: Path, untrained_demo_model: Path) -> Callable[..., str]:
    env = {
        **os.environ,
        "INSTANCE_STUDIO_HOME": str(tmp_path / "home"),
        "INSTANCE_STUDIO_DEMO_MODEL": str(untrained_demo_model),
    }
    env.pop("QT_QPA_PLATFORM", None)

    def run(*args: str | Path) -> str:
        proc = subprocess.run(
            [sys.executable, "-c", WITHOUT_QT, str(REPO_ROOT / "main.py"), *map(str, args)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=env,
            timeout=300,
            check=False,
        )
        assert "Qt was imported" not in proc.stderr, proc.stderr
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr}"
        return proc.stdout

    return run


def test_the_headless_commands_run_where_qt_cannot_be_imported(
    run_without_qt: Callable[..., str], tmp_path: Path
) -> None:
    project = tmp_path / "p.instproj"
    assert "created" in run_without_qt("new", project, "--name", "No Qt")
    run_without_qt("import-json", project, OFFICIAL_DEMOS / "demo_cat_dog_robin.json")
    run_without_qt("export-json", project, "1", tmp_path / "scene.json")
    assert json.loads((tmp_path / "scene.json").read_text())["caption"]

    shapes = shapes_project(tmp_path / "shapes.instproj", scenes=1, steps=2)
    assert "summary: 1 done" in run_without_qt("render", shapes, "--all")
    assert "exported 1 image(s)" in run_without_qt("export", shapes, tmp_path / "images")
    (png,) = (tmp_path / "images").glob("*.png")
    run_without_qt("import-png", project, png)
    info = json.loads(run_without_qt("info", project, "--json"))
    assert info["name"] == "No Qt" and len(info["scenes"]) == 2 and info["queue"]["pending"] == 0

    assert "settings:" in run_without_qt("models", "list")
    assert "import-json" in run_without_qt("--help")
