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

# Runs main.py's commands as `python main.py ARGS` would, several in one process (each child costs seconds of
# imports), with a finder in front of every other that refuses Qt and says so on stderr (a library that
# catches the ImportError must not hide that Qt was asked for). argv[1] is a JSON list of the commands' ARGS;
# each command's output ends with a line naming its exit code.
WITHOUT_QT = """
import json, runpy, sys

class NoQt:
    asked = []

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("PySide6", "shiboken6"):
            NoQt.asked.append(name)
            raise ImportError(f"{name} is blocked: a headless command must not import Qt")
        return None

sys.meta_path.insert(0, NoQt())
main_py, commands = sys.argv[1], json.loads(sys.argv[2])
main = runpy.run_path(main_py, run_name="headless")["main"]
try:
    for args in commands:
        sys.argv = [main_py, *args]
        try:
            code = main(args)
        except SystemExit as exit:  # --help
            code = exit.code
        print(f"{END} {code}", flush=True)
finally:
    if NoQt.asked:
        print("Qt was imported: " + ", ".join(NoQt.asked), file=sys.stderr)
"""
END = "--- headless command ended, exit"


@pytest.fixture
def run_without_qt(tmp_path: Path, untrained_demo_model: Path) -> Callable[..., list[str]]:
    env = {
        **os.environ,
        "INSTANCE_STUDIO_HOME": str(tmp_path / "home"),
        "INSTANCE_STUDIO_DEMO_MODEL": str(untrained_demo_model),
    }
    env.pop("QT_QPA_PLATFORM", None)

    def run(*commands: tuple[str | Path, ...]) -> list[str]:
        """Each command's stdout, after checking that each exited 0 and none imported Qt."""
        listed = json.dumps([[str(arg) for arg in args] for args in commands])
        proc = subprocess.run(
            [sys.executable, "-c", f"END = {END!r}\n{WITHOUT_QT}", str(REPO_ROOT / "main.py"), listed],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env=env,
            timeout=300,
            check=False,
        )
        assert "Qt was imported" not in proc.stderr, proc.stderr
        assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr}"
        outputs = proc.stdout.split(END)
        codes = [out.partition("\n")[0].strip() for out in outputs[1:]]
        assert codes == ["0"] * len(commands), f"{commands}: exits {codes}\n{proc.stderr}"
        return [outputs[0], *(out.partition("\n")[2] for out in outputs[1:-1])]

    return run


def test_the_headless_commands_run_where_qt_cannot_be_imported(
    run_without_qt: Callable[..., list[str]], tmp_path: Path
) -> None:
    project = tmp_path / "p.instproj"
    shapes = shapes_project(tmp_path / "shapes.instproj", scenes=1, steps=2)
    created, _, _, rendered, exported = run_without_qt(
        ("new", project, "--name", "No Qt"),
        ("import-json", project, OFFICIAL_DEMOS / "demo_cat_dog_robin.json"),
        ("export-json", project, "1", tmp_path / "scene.json"),
        ("render", shapes, "--all"),
        ("export", shapes, tmp_path / "images"),
    )
    assert "created" in created
    assert json.loads((tmp_path / "scene.json").read_text())["caption"]
    assert "summary: 1 done" in rendered
    assert "exported 1 image(s)" in exported
    (png,) = (tmp_path / "images").glob("*.png")
    _, info, models, usage = run_without_qt(
        ("import-png", project, png), ("info", project, "--json"), ("models", "list"), ("--help",)
    )
    parsed = json.loads(info)
    assert parsed["name"] == "No Qt" and len(parsed["scenes"]) == 2 and parsed["queue"]["pending"] == 0
    assert "settings:" in models
    assert "import-json" in usage
