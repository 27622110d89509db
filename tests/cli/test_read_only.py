"""A project that cannot be written (issue 15, item 10): it opens read-only. `info`, `export` and
`export-json` work; `import-json` and `render` are refused in one line; no -wal, -shm or lock file is left.

As root, permissions do not stop anything, so the test then says "not writable" where the app asks
(`projects.database._writable`) and the same read-only path runs."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import main
from tests.cli.test_export_import import rendered_project
from tests.conftest import OFFICIAL_DEMOS

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture(params=["file", "folder"])
def read_only_project(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A rendered project whose file (0o444) or folder (0o555) cannot be written."""
    folder = tmp_path / "projects"
    folder.mkdir()
    path = rendered_project(folder / "p.instproj")
    target = path if request.param == "file" else folder
    mode = 0o444 if request.param == "file" else 0o555
    if AS_ROOT:
        monkeypatch.setattr("projects.database._writable", lambda _path: False)
    target.chmod(mode)
    try:
        yield path
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_beside(path: Path) -> None:
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "no -wal, -shm or lock file left"


def test_info_and_exports_work(read_only_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = digest(read_only_project)
    assert main.main(["info", str(read_only_project)]) == 0
    assert "scenes: 2" in capsys.readouterr().out
    assert main.main(["export", str(read_only_project), str(tmp_path / "out"), "--format", "coco"]) == 0
    assert "exported 2 image(s)" in capsys.readouterr().out
    assert main.main(["export-json", str(read_only_project), "cats", str(tmp_path / "cats.json")]) == 0
    assert (tmp_path / "cats.json").is_file()
    assert digest(read_only_project) == before
    assert_nothing_beside(read_only_project)


@pytest.mark.parametrize(
    "command",
    [
        ["import-json", str(OFFICIAL_DEMOS / "demo_cat_dog_robin.json")],
        ["render", "--all"],
        ["render", "--retry-failed"],
        ["render"],
    ],
    ids=["import-json", "render --all", "render --retry-failed", "render"],
)
def test_writing_is_refused_in_one_line(
    read_only_project: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(read_only_project)
    assert main.main([command[0], str(read_only_project), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {read_only_project}: the project file is read-only: ")
    assert err.count("\n") == 1 and "Traceback" not in err and "SQL" not in err and "sqlite" not in err.lower()
    assert digest(read_only_project) == before
    assert_nothing_beside(read_only_project)


def test_a_writable_project_still_opens_for_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = rendered_project(tmp_path / "p.instproj")
    assert stat.S_IMODE(path.stat().st_mode) & 0o200
    assert main.main(["import-json", str(path), str(OFFICIAL_DEMOS / "demo_cat_dog_robin.json")]) == 0
    assert "imported" in capsys.readouterr().out
