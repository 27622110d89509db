from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop.app import create_window, make_settings
from desktop.main_window import SAMPLE_PROJECT
from desktop.welcome import remember_project
from tests.desktop.conftest import make_project


def test_first_start_opens_a_copy_of_the_sample_project(qtbot: QtBot, tmp_path: Path) -> None:
    before = SAMPLE_PROJECT.read_bytes()
    window = create_window(tmp_path)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.editor is not None, timeout=10_000)
    copy = tmp_path / "samples" / SAMPLE_PROJECT.name
    assert window.store is not None and window.store.path == copy
    assert window.scene_list.model.rowCount() == 9
    window.close()
    assert SAMPLE_PROJECT.read_bytes() == before  # the bundled file is never opened for writing


def test_later_starts_show_the_welcome_page_with_recent_projects(qtbot: QtBot, tmp_path: Path) -> None:
    project = make_project(tmp_path / "mine.instproj")
    settings = make_settings(tmp_path)
    remember_project(settings, project)
    settings.sync()
    window = create_window(tmp_path)
    qtbot.addWidget(window)
    assert window.store is None and window.pages.currentWidget() is window.welcome
    item = window.welcome.recent.item(0)
    assert "mine" in item.text()
    window.welcome.recentRequested.emit(str(project))
    qtbot.waitUntil(lambda: window.editor is not None, timeout=10_000)
    assert window.editor.scene.name == "scene 1"
    window.close()


def test_the_window_remembers_its_geometry(qtbot: QtBot, tmp_path: Path) -> None:
    project = make_project(tmp_path / "mine.instproj")
    window = create_window(tmp_path, project)
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: window.editor is not None, timeout=10_000)
    window.resize(701, 503)  # the offscreen screen is 800 x 800
    window.docks["queue"].hide()
    window.close()
    again = create_window(tmp_path, project)
    qtbot.addWidget(again)
    qtbot.waitUntil(lambda: again.editor is not None, timeout=10_000)
    assert (again.width(), again.height()) == (701, 503)
    assert not again.docks["queue"].isVisibleTo(again)
    again.close()
