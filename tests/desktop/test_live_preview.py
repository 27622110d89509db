"""Live preview in the window, with real mouse events, the real render thread and an untrained demo model:
the preview follows a drag to its final geometry, stale previews never show, Live off does nothing, Keep this
queues one full-quality job, and nothing of a preview reaches the project file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot
from sqlalchemy import func, select

from desktop.main_window import MainWindow
from desktop.render_thread import LivePreview
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.models import Render, RenderJob
from projects.queue import list_jobs
from projects.scenes import SceneLayout, add_scene
from tests.desktop.conftest import click, drag, open_window

SCENE_STEPS = 6  # the scene's own steps: what Keep this renders
PREVIEW_STEPS = 2  # what the tests set the preview to (fast on the CPU)
WAIT_MS = 60_000


def live_project(path: Path, scenes: int = 1) -> Path:
    with Project.create(path) as project, project.write() as session:
        for index in range(scenes):
            specs = (
                InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.3, 0.3)),
                InstanceSpec("a blue square", InstanceKind.BOX, box=(0.6, 0.6, 0.9, 0.9)),
            )
            layout = SceneLayout(f"s{index}", "shapes", 512, 512, specs, seed=index, overrides={"steps": SCENE_STEPS})
            add_scene(session, layout)
    return path


def live_window(qtbot: QtBot, path: Path, home: Path, demo_model: Path) -> MainWindow:
    home.mkdir(exist_ok=True)
    window = open_window(qtbot, path, home)
    window.queue.demo_model_dir = demo_model  # read when the render thread loads the model
    return window


@pytest.fixture
def window(qtbot: QtBot, tmp_path: Path, untrained_demo_model: Path) -> Iterator[MainWindow]:
    win = live_window(qtbot, live_project(tmp_path / "p.instproj", scenes=2), tmp_path / "home", untrained_demo_model)
    win.commands.live_steps.setValue(PREVIEW_STEPS)
    yield win
    win.close()


def live_on(qtbot: QtBot, window: MainWindow) -> None:
    window.commands.live.setChecked(True)
    wait_for_preview_of_scene(qtbot, window)


def wait_for_preview_of_scene(qtbot: QtBot, window: MainWindow) -> LivePreview:
    """The preview of exactly what the editor holds now."""

    def matches() -> bool:
        shown, editor = window.live.shown, window.editor
        return (
            shown is not None
            and editor is not None
            and shown.request.instances == tuple(inst.spec for inst in editor.scene.instances)
            and window.canvas.has_preview
        )

    qtbot.waitUntil(matches, timeout=WAIT_MS)
    assert window.live.shown is not None
    return window.live.shown


def counts(path: Path) -> tuple[int, int]:
    """(jobs, renders) in the project file."""
    with Project.open(path) as project, project.read() as session:
        jobs = session.scalar(select(func.count()).select_from(RenderJob)) or 0
        renders = session.scalar(select(func.count()).select_from(Render)) or 0
        return jobs, renders


def test_a_drag_with_real_mouse_events_ends_in_a_preview_of_its_final_geometry(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> None:
    live_on(qtbot, window)
    submits_before = window.live.submits
    drag(qtbot, window.canvas, (0.2, 0.2), (0.45, 0.35), steps=12)
    editor = window.editor
    assert editor is not None
    moved = editor.scene.instances[0].spec
    assert moved.box is not None and moved.box[0] > 0.3, "the drag moved the instance"
    preview = wait_for_preview_of_scene(qtbot, window)
    assert preview.request.instances[0].box == moved.box
    assert preview.request.steps == PREVIEW_STEPS
    assert preview.image is not None and not preview.image.isNull()
    assert window.live.submits > submits_before
    # The mouse moves were coalesced, at most one request per event-loop turn: never more than one per move.
    assert window.live.submits - submits_before <= 12 + 2
    assert window.live_status.text().startswith("Live preview · ")
    assert "of 2 instances reused" in window.live_status.text()
    assert window.commands.keep.isEnabled()
    window.close()
    assert counts(tmp_path / "p.instproj") == (0, 0), "a preview writes neither jobs nor renders"


def test_an_out_of_date_preview_is_never_shown(qtbot: QtBot, window: MainWindow) -> None:
    live_on(qtbot, window)
    shown_tokens: list[tuple[int, int]] = []  # (token shown, newest token at the time)
    live = window.live
    real_set_preview = window.canvas.set_preview

    def spy(image: QImage | None) -> None:
        if image is not None and live.shown is not None:
            shown_tokens.append((live.shown.token, live._token))
        real_set_preview(image)

    window.canvas.set_preview = spy  # type: ignore[method-assign]
    editor = window.editor
    assert editor is not None
    for x in np.linspace(0.1, 0.5, 10):  # edits faster than the previews: most are superseded
        editor.document.preview_instance(
            editor.scene.instances[0].with_spec(
                dataclasses.replace(editor.scene.instances[0].spec, box=(float(x), 0.1, float(x) + 0.2, 0.3))
            )
        )
        qtbot.wait(30)
    wait_for_preview_of_scene(qtbot, window)
    assert shown_tokens and all(token == newest for token, newest in shown_tokens)
    # A late preview of an older request, arriving after the newest one, changes nothing.
    newest = live.shown
    assert newest is not None and newest.image is not None
    stale_image = QImage(8, 8, QImage.Format.Format_RGB888)
    stale_image.fill(0)
    stale = dataclasses.replace(newest, token=newest.token - 1, image=stale_image)
    window.queue.previewReady.emit(stale)
    qtbot.wait(20)
    assert live.shown is newest


def test_with_live_off_nothing_is_submitted_or_shown(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    assert not window.commands.live.isChecked(), "off by default"
    arrived: list[LivePreview] = []
    window.queue.previewReady.connect(arrived.append)
    drag(qtbot, window.canvas, (0.2, 0.2), (0.4, 0.4))
    qtbot.wait(300)
    assert window.live.submits == 0 and arrived == [] and not window.canvas.has_preview
    assert not window.commands.keep.isEnabled()
    # Turning it off clears the preview on the canvas and cancels what the render thread has.
    live_on(qtbot, window)
    window.commands.live.setChecked(False)
    assert not window.canvas.has_preview and window.live.shown is None
    assert window.live_status.text() == ""
    submits = window.live.submits
    drag(qtbot, window.canvas, (0.5, 0.5), (0.3, 0.3))
    qtbot.wait(300)
    assert window.live.submits == submits and not window.canvas.has_preview


def test_keep_this_queues_one_job_at_the_scenes_own_quality(qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    live_on(qtbot, window)
    drag(qtbot, window.canvas, (0.2, 0.2), (0.3, 0.4))
    wait_for_preview_of_scene(qtbot, window)
    editor = window.editor
    assert editor is not None
    kept_box = editor.scene.instances[0].spec.box
    assert window.queue.render_thread is not None
    with qtbot.waitSignal(window.queue.render_thread.jobEnded, timeout=WAIT_MS):
        window.commands.keep.trigger()
    store = window.store
    assert store is not None and store.project is not None
    with store.project.read() as session:
        jobs = list_jobs(session)
    assert len(jobs) == 1
    request = jobs[0].request
    assert request.steps == SCENE_STEPS, "full quality: the scene's steps, not the preview's"
    assert request.instances[0].box == kept_box
    # The finished render replaces the preview on the canvas.
    qtbot.waitUntil(lambda: not window.canvas.has_preview and window.history.list.count() == 1, timeout=WAIT_MS)
    window.close()
    assert counts(tmp_path / "p.instproj") == (1, 1)


def test_a_scene_that_cannot_render_submits_nothing_and_says_why(qtbot: QtBot, window: MainWindow) -> None:
    live_on(qtbot, window)
    editor = window.editor
    assert editor is not None
    submits = window.live.submits
    editor.document.preview_instance(
        editor.scene.instances[0].with_spec(dataclasses.replace(editor.scene.instances[0].spec, caption=""))
    )
    qtbot.waitUntil(lambda: "instance 1 has no caption" in window.live_status.text(), timeout=5_000)
    assert window.live.submits == submits and not window.canvas.has_preview


def test_switching_scenes_or_showing_a_render_replaces_the_preview(qtbot: QtBot, window: MainWindow) -> None:
    live_on(qtbot, window)
    first = window.editor
    assert first is not None
    cleared: list[bool] = []
    real_clear = window.queue.clear_preview

    def spy() -> None:
        cleared.append(True)
        real_clear()

    window.queue.clear_preview = spy  # type: ignore[method-assign]
    window.scene_list.select_scene(window.scene_list.model.scenes[1].scene_id)
    qtbot.waitUntil(lambda: window.editor is not None and window.editor is not first, timeout=10_000)
    assert cleared, "the old scene's preview is cancelled on the render thread"
    preview = wait_for_preview_of_scene(qtbot, window)  # the new scene gets its own
    assert preview.request.seed == 1
    # A render shown from the history (here: any render put on the canvas) replaces the preview.
    render = QImage(16, 16, QImage.Format.Format_RGB888)
    render.fill(0xFF0000)
    window.canvas.set_background(render)
    assert not window.canvas.has_preview and window.live.shown is None
    assert not window.commands.keep.isEnabled()


def test_live_and_its_steps_are_remembered(qtbot: QtBot, tmp_path: Path, untrained_demo_model: Path) -> None:
    path = live_project(tmp_path / "p.instproj")
    home = tmp_path / "home"
    first = live_window(qtbot, path, home, untrained_demo_model)
    assert not first.commands.live.isChecked()
    first.commands.live.setChecked(True)
    first.commands.live_steps.setValue(3)
    first.close()
    second = live_window(qtbot, path, home, untrained_demo_model)
    try:
        assert second.commands.live.isChecked() and second.live.enabled
        assert second.commands.live_steps.value() == 3
        request = second.live.request()
        assert request is not None and request.steps == 3
        assert "Live" in second.commands.live.toolTip() and second.commands.live in second.commands.toolbar.actions()
    finally:
        second.close()


def test_a_caption_typed_in_place_and_a_nudge_are_previewed_before_they_are_kept(
    qtbot: QtBot, window: MainWindow
) -> None:
    live_on(qtbot, window)
    canvas = window.canvas
    qtbot.mouseDClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=canvas.map_normalised(0.2, 0.2))
    line = canvas.caption_editor
    assert line is not None
    line.selectAll()
    qtbot.keyClicks(line, "a green star")
    preview = wait_for_preview_of_scene(qtbot, window)  # typed, not committed yet
    assert preview.request.instances[0].caption == "a green star"
    qtbot.keyClick(line, Qt.Key.Key_Return)
    click(qtbot, canvas, 0.2, 0.2)  # select it
    canvas.setFocus()
    before = preview.request.instances[0].box
    qtbot.keyClick(canvas, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # a nudge
    nudged = wait_for_preview_of_scene(qtbot, window)
    assert before is not None and nudged.request.instances[0].box is not None
    assert nudged.request.instances[0].box[0] > before[0]


def test_a_continuous_drag_shows_previews_before_it_stops(qtbot: QtBot, window: MainWindow) -> None:
    """Moves every 16 ms, each faster than a preview: without waiting for the one in flight, every move would
    cancel it and nothing would show until the mouse stops."""
    live_on(qtbot, window)
    canvas, viewport = window.canvas, window.canvas.viewport()
    shown_while_moving: list[int] = []
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=canvas.map_normalised(0.2, 0.2))
    first_token = window.live.shown.token if window.live.shown else 0
    for i in range(200):
        x = 0.2 + 0.3 * abs(np.sin(i / 20))
        qtbot.mouseMove(viewport, canvas.map_normalised(x, 0.2 + 0.001 * (i % 2)))
        qtbot.wait(16)
        shown = window.live.shown
        if shown is not None and shown.token > first_token and shown.token not in shown_while_moving:
            shown_while_moving.append(shown.token)
        if len(shown_while_moving) >= 2:
            break
    assert len(shown_while_moving) >= 2, "the image follows the drag while it moves"
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=canvas.map_normalised(0.3, 0.2))
    wait_for_preview_of_scene(qtbot, window)  # and the last one is of where it stopped
