import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import main
from tests.conftest import OFFICIAL_DEMOS, REPO_ROOT

DEMO = OFFICIAL_DEMOS / "demo_cat_dog_robin.json"
CORGI = OFFICIAL_DEMOS / "demo_corgi_kitchen.json"


def run_cli(*args: str | Path) -> tuple[int, str, str]:
    """`python main.py ...` in a child process, as a script would call it."""
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "main.py"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_new_import_info_export_end_to_end(tmp_path: Path) -> None:
    project = tmp_path / "demo.instproj"
    assert run_cli("new", project, "--name", "Demo")[0] == 0
    code, out, err = run_cli("import-json", project, DEMO, CORGI)
    assert code == 0, err
    assert (
        "as scene 1 'demo_cat_dog_robin' (4 instances)" in out
        and "as scene 2 'demo_corgi_kitchen' (13 instances)" in out
    )
    assert "demo_corgi_kitchen.json: instance 7 ('kitchen counter') bbox reaches outside" in err

    code, out, _ = run_cli("info", project, "--json")
    info = json.loads(out)
    assert code == 0 and info["name"] == "Demo" and info["instances"] == 17
    assert [s["kinds"] for s in info["scenes"]] == [{"box": 4}, {"mask": 8, "box": 5}]
    assert info["queue"] == {"pending": 0, "running": 0, "done": 0, "failed": 0, "cancelled": 0}

    out_file = tmp_path / "robin.json"
    assert run_cli("export-json", project, "demo_cat_dog_robin", out_file)[0] == 0
    exported = json.loads(out_file.read_text())
    original = json.loads(DEMO.read_text())
    assert exported["caption"] == original["caption"]
    for got, want in zip(exported["annos"], original["annos"], strict=True):
        assert got["bbox"] == pytest.approx(want["bbox"])


def test_human_info_lists_scenes_and_queue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p.instproj"
    assert main.main(["new", str(project)]) == 0
    assert main.main(["import-json", str(project), str(DEMO)]) == 0
    capsys.readouterr()
    assert main.main(["info", str(project)]) == 0
    out = capsys.readouterr().out
    assert "scenes: 1  instances: 4" in out
    assert "queue: pending 0, running 0, done 0, failed 0, cancelled 0" in out
    assert "demo_cat_dog_robin" in out and "512x512" in out and "box 4" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "{tmp}/missing.instproj"], "missing.instproj: no such project file"),
        (["info", "{tmp}/notes.txt"], "not an Instance Studio project (not an SQLite database)"),
        (["new", "{tmp}/notes.txt"], "a file already exists there"),
        (["export-json", "{tmp}/p.instproj", "nope", "{tmp}/o.json"], "no scene with id or name 'nope'"),
        (["export-json", "{tmp}/p.instproj", "1", "{tmp}"], "is a folder"),
        (["import-json", "{tmp}/p.instproj", "{tmp}/notes.txt"], "notes.txt: not valid JSON"),
    ],
)
def test_failures_exit_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    (tmp_path / "notes.txt").write_text("not json")
    assert main.main(["new", str(tmp_path / "p.instproj")]) == 0
    assert main.main(["import-json", str(tmp_path / "p.instproj"), str(DEMO)]) == 0
    capsys.readouterr()
    assert main.main([a.format(tmp=tmp_path) for a in args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_one_bad_file_imports_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p.instproj"
    bad = tmp_path / "bad.json"
    bad.write_text('{"caption": "x", "width": 512, "height": 512, "annos": [{"caption": "y"}]}')
    main.main(["new", str(project)])
    assert main.main(["import-json", str(project), str(DEMO), str(bad)]) == 1
    assert "bad.json: instance 1 ('y') has no location" in capsys.readouterr().err
    main.main(["info", str(project), "--json"])
    assert json.loads(capsys.readouterr().out)["scenes"] == []


def test_usage_errors_exit_2() -> None:
    code, _, err = run_cli("frobnicate")
    assert code == 2 and "invalid choice" in err
    assert run_cli("import-json")[0] == 2


def test_help_lists_the_commands() -> None:
    code, out, _ = run_cli("--help")
    assert code == 0
    for command in ("gui", "new", "import-json", "export-json", "info"):
        assert command in out


def test_a_locked_project_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from projects.database import Project

    project = tmp_path / "p.instproj"
    with Project.create(project):
        assert main.main(["info", str(project)]) == 1
    assert "already open in another Instance Studio" in capsys.readouterr().err


def test_log_goes_to_a_rotating_file_and_verbose_adds_the_console(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSTANCE_STUDIO_HOME", str(tmp_path / "home"))
    code, _, err = run_cli("--verbose", "info", tmp_path / "missing.instproj")
    assert code == 1
    log_file = tmp_path / "home" / "logs" / "instance-studio.log"
    assert "info failed: " in log_file.read_text()
    assert "WARNING instance_studio: info failed" in err
    code, _, err = run_cli("info", tmp_path / "missing.instproj")
    assert err.count("\n") == 1, "without --verbose only the one-line error reaches the console"


def test_no_arguments_opens_the_gui(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr("desktop.app.run", lambda *args: calls.append(args) or 0)
    assert main.main([]) == 0
    ((_argv, home, project, settings),) = calls
    assert project is None and home == main.data_dir() and settings == main.model_settings_path()


def test_gui_opens_the_given_project_or_says_it_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr("desktop.app.run", lambda *args: calls.append(args) or 0)
    path = tmp_path / "p.instproj"
    assert main.main(["gui", str(path)]) == 1  # missing: one line, no window
    assert calls == []
    path.write_bytes(b"")
    assert main.main(["gui", str(path)]) == 0
    assert calls[0][2] == path


def test_gui_without_a_display_says_so_instead_of_crashing(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "main.py")], capture_output=True, text=True, env=env)
    if sys.platform == "linux":
        assert proc.returncode == 1
        assert proc.stderr == "error: no display to open the window on; use a headless command (see --help)\n"


def test_gui_names_a_missing_qt_library_in_one_line_before_qt_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh Debian under X11 without libxcb-cursor0: one line naming the package, exit 1, no Qt."""
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("desktop.system_libraries.loadable", lambda soname: soname != "libxcb-cursor.so.0")
    monkeypatch.setattr(
        "desktop.system_libraries.shutil.which", lambda cmd: "/usr/bin/apt-get" * (cmd == "apt-get") or None
    )
    monkeypatch.setitem(sys.modules, "desktop.app", None)  # the Qt application is never reached
    assert main.main([]) == 1
    assert capsys.readouterr().err == (
        "error: Qt needs the system library libxcb-cursor0 (sudo apt install libxcb-cursor0); "
        "see the README, 'System libraries for the window'\n"
    )

    monkeypatch.setattr(
        "desktop.system_libraries.loadable", lambda soname: "icccm" not in soname and "keysyms" not in soname
    )
    monkeypatch.setattr("desktop.system_libraries.shutil.which", lambda cmd: None)  # neither apt nor dnf here
    assert main.main(["gui"]) == 1
    assert capsys.readouterr().err == (
        "error: Qt needs the system libraries libxcb-icccm4, libxcb-keysyms1 "
        "(sudo apt install libxcb-icccm4 libxcb-keysyms1; or sudo dnf install xcb-util-wm xcb-util-keysyms); "
        "see the README, 'System libraries for the window'\n"
    )


def test_gui_names_a_library_missing_for_qt_itself(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without libEGL, importing PySide6 fails; that becomes the same one line, not a traceback."""
    import builtins

    real_import = builtins.__import__

    def no_egl(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "desktop.app":
            raise ImportError("libEGL.so.1: cannot open shared object file: No such file or directory")
        return real_import(name, *args, **kwargs)

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(builtins, "__import__", no_egl)
    monkeypatch.setattr("desktop.system_libraries.shutil.which", lambda cmd: "/usr/bin/dnf" * (cmd == "dnf") or None)
    assert main.main([]) == 1
    assert capsys.readouterr().err == (
        "error: Qt needs the system library libglvnd-egl (sudo dnf install libglvnd-egl); "
        "see the README, 'System libraries for the window'\n"
    )


def test_installed_command_is_the_same_entry_point() -> None:
    command = shutil.which("instance-studio", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.fail("the instance-studio command is not installed next to this Python; run the README's setup")
    proc = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "import-json" in proc.stdout


def test_info_names_each_scenes_model_and_loras(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from projects.database import Project
    from projects.scenes import find_scene

    project = tmp_path / "p.instproj"
    assert main.main(["new", str(project)]) == 0
    assert main.main(["import-json", str(project), str(DEMO)]) == 0
    with Project.open(project) as opened, opened.write() as session:
        scene = find_scene(session, "demo_cat_dog_robin")
        scene.overrides = {"model_id": "anime", "loras": [{"name": "ink", "weight": 0.8}]}
    capsys.readouterr()
    assert main.main(["info", str(project)]) == 0
    assert "model anime + LoRAs ink 0.8" in capsys.readouterr().out
    assert main.main(["info", str(project), "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)["scenes"]
    assert (listed["model"], listed["loras"]) == ("anime", [{"name": "ink", "weight": 0.8}])
