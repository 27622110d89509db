"""The window's store opening a project it cannot write (issue 15, item 10): it opens, says it is
read-only, shows the scenes, and an edit is refused in words (nothing crashes, nothing is written)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from tests.desktop.conftest import make_project
from tests.desktop.test_store import load, opened


def test_a_read_only_project_opens_says_so_and_refuses_edits(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_project(tmp_path / "p.instproj", scenes=2, instances=1)
    before = path.read_bytes()
    monkeypatch.setattr("projects.database._writable", lambda _path: False)  # as a 0o444 file, even for root
    store, snapshot = opened(qtbot, path)
    try:
        assert len(snapshot.scenes) == 2
        assert any("p.instproj is read-only" in note for note in snapshot.notes)
        scene = load(qtbot, store, snapshot.scenes[0].scene_id)
        with qtbot.waitSignal(store.failed, timeout=10_000) as blocker:
            store.save_scene(dataclasses.replace(scene, name="renamed"))
        assert "the project file is read-only" in blocker.args[0]
    finally:
        store.close()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.instproj"]
