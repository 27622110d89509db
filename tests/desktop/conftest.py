"""Desktop fixtures: a real project file, a real main window on it, and real mouse input on the canvas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from desktop.canvas.view import CanvasView
from desktop.main_window import MainWindow
from desktop.theme import apply_theme
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.scenes import SceneLayout, add_scene


def make_project(path: Path, scenes: int = 2, instances: int = 1) -> Path:
    with Project.create(path) as project, project.write() as session:
        for index in range(scenes):
            specs = tuple(
                InstanceSpec(caption=f"thing {k}", kind=InstanceKind.BOX, box=(0.1 + 0.1 * k, 0.1, 0.3 + 0.1 * k, 0.3))
                for k in range(instances)
            )
            add_scene(session, SceneLayout(f"scene {index + 1}", f"caption {index + 1}", 512, 512, specs, seed=index))
    return path


def open_window(qtbot: QtBot, path: Path, home: Path) -> MainWindow:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    apply_theme(app, "dark")
    settings = QSettings(str(home / "gui.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, home)
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    qtbot.waitExposed(window)
    window.open_project(path)
    qtbot.waitUntil(lambda: window.editor is not None, timeout=10_000)
    window.canvas.fit()
    return window


@pytest.fixture
def project_path(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p.instproj")


@pytest.fixture
def window(qtbot: QtBot, project_path: Path, tmp_path: Path) -> Iterator[MainWindow]:
    home = tmp_path / "home"
    home.mkdir()
    win = open_window(qtbot, project_path, home)
    yield win
    win.close()


def at(view: CanvasView, x: float, y: float) -> QPoint:
    """Viewport pixels of a normalised canvas point."""
    return view.map_normalised(x, y)


def drag(qtbot: QtBot, view: CanvasView, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    viewport = view.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=at(view, *start))
    for i in range(1, steps + 1):
        t = i / steps
        point = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
        qtbot.mouseMove(viewport, at(view, *point))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=at(view, *end))


def click(qtbot: QtBot, view: CanvasView, x: float, y: float) -> None:
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=at(view, x, y))
