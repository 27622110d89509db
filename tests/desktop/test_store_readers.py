"""`ProjectStore.project_for_reading`: a background reader sees the edits made before it, beside the store's writes."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from desktop.background import TaskControl, run_in_background
from desktop.store import ProjectStore
from projects.errors import ProjectError
from projects.models import Scene
from tests.desktop.conftest import make_project


def test_a_background_reader_sees_the_edits_made_before_it(qtbot: QtBot, tmp_path: Path) -> None:
    store = ProjectStore()
    with qtbot.waitSignal(store.opened, timeout=10_000) as opened:
        store.open(make_project(tmp_path / "p.instproj"))
    scene_id = opened.args[0].scenes[0].scene_id
    with qtbot.waitSignal(store.sceneLoaded, timeout=10_000) as loaded:
        store.load_scene(scene_id)
    gate = threading.Event()
    store.job_action(lambda session: gate.wait(10))  # the store's worker is busy...
    store.save_scene(dataclasses.replace(loaded.args[0], name="renamed"))  # ...so the save waits in its queue

    def read(control: TaskControl) -> str:  # plain data out of a session of the reader's own
        with store.project_for_reading().read() as session:
            name = session.scalar(select(Scene.name).where(Scene.id == scene_id))
        assert name is not None
        return name

    names: list[str] = []
    task = run_in_background(read, on_done=names.append)
    assert not task.wait(0.2)  # the reader waits for the save, not the GUI
    gate.set()
    qtbot.waitUntil(lambda: names != [], timeout=10_000)
    assert names == ["renamed"]
    store.close()


def test_without_a_project_there_is_nothing_to_read() -> None:
    with pytest.raises(ProjectError):
        ProjectStore().project_for_reading()
