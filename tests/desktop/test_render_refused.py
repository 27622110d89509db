"""Render refused: a scene that cannot be rendered says why next to the Render button, not "Not saved"."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QRect, Qt
from pytestqt.qtbot import QtBot

import engine.runner  # noqa: F401  (torch loads here once, not in the render thread as the window closes)
from desktop.action_notice import ActionNotice
from desktop.main_window import MainWindow
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.scenes import SceneLayout, add_scene
from tests.desktop.conftest import open_window


def project_with_an_uncaptioned_instance(path: Path) -> Path:
    with Project.create(path) as project, project.write() as session:
        spec = InstanceSpec(caption="", kind=InstanceKind.BOX, box=(0.2, 0.2, 0.6, 0.6))
        add_scene(session, SceneLayout("scene 1", "a table", 512, 512, (spec,), seed=1))
    return path


def rect_in(window: MainWindow, widget: ActionNotice | object) -> QRect:
    assert hasattr(widget, "mapTo") and hasattr(widget, "size")
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def test_render_refused_says_why_under_the_render_button(qtbot: QtBot, tmp_path: Path) -> None:
    path = project_with_an_uncaptioned_instance(tmp_path / "p.instproj")
    (tmp_path / "home").mkdir()
    window = open_window(qtbot, path, tmp_path / "home")
    assert window.store is not None and window.editor is not None
    window.queue.set_paused(True)  # what is queued at the end stays queued
    messages: list[str] = []
    queued: list[int] = []
    window.statusBar().messageChanged.connect(messages.append)
    window.store.jobsQueued.connect(queued.append)
    render = window.commands.render
    button = window.commands.toolbar.widgetForAction(render)
    assert button is not None and button.isVisible()

    with qtbot.waitSignal(window.store.queueRefused, timeout=10_000):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    notice = window.findChild(ActionNotice)
    assert notice is not None
    qtbot.waitUntil(notice.isVisible)
    assert notice.text() == "Not queued: instance 1 has no caption"
    assert window.statusBar().currentMessage() == "Not queued: instance 1 has no caption"
    under, below = rect_in(window, button), rect_in(window, notice)
    assert 0 <= below.top() - under.bottom() <= 10  # just below the button...
    assert below.left() <= under.right() and below.right() >= under.left()  # ...and overlapping it
    assert below.height() > notice.fontMetrics().height() and below.width() < window.width() // 2  # one line

    qtbot.mouseClick(notice, Qt.MouseButton.LeftButton)  # dismissed with a click
    assert not notice.isVisible()
    window.canvas.setFocus()
    with qtbot.waitSignal(window.store.queueRefused, timeout=10_000):  # the same from the keyboard
        qtbot.keyClick(window.canvas, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(notice.isVisible)
    assert notice.text() == "Not queued: instance 1 has no caption"
    assert not any("Not saved" in message for message in messages)
    assert queued == []

    editor = window.editor
    editor.set_caption(editor.scene.instances[0].uid, "a red ball")
    with qtbot.waitSignal(window.store.jobsQueued, timeout=10_000):
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert not notice.isVisible()  # out of date once a render is queued
    assert window.statusBar().currentMessage() == "Queued 1 render(s)"
    window.close()
