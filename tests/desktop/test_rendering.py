"""Rendering from the window with the real engine on a demo-sized model: progress, history, cancelling,
and closing mid-render."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QThread
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QProgressBar
from pytestqt.qtbot import QtBot

from desktop.main_window import MainWindow
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.models import JobStatus, Render
from projects.queue import claim_next, list_jobs
from projects.scenes import SceneLayout, add_scene, find_scene, queue_scene
from rendering.demo_model import DEMO_MODEL_ENV
from rendering.outcomes import JobResult, Outcome
from tests.conftest import REPO_ROOT
from tests.desktop.conftest import open_window


@pytest.fixture
def demo_model(untrained_demo_model: Path) -> Path:
    return untrained_demo_model


def project(path: Path, steps: tuple[int, ...]) -> Path:
    with Project.create(path) as opened, opened.write() as session:
        for k, count in enumerate(steps):
            spec = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.2, 0.2, 0.6, 0.6))
            layout = SceneLayout(f"s{k}", "a red circle", 64, 64, (spec,), seed=k, overrides={"steps": count})
            add_scene(session, layout)
    return path


def window_on(qtbot: QtBot, path: Path, home: Path, demo_model: Path) -> MainWindow:
    home.mkdir(exist_ok=True)
    window = open_window(qtbot, path, home)
    # The render thread reads the model folder when its first job starts.
    window.queue.demo_model_dir = demo_model
    return window


def test_render_reports_progress_and_lands_in_the_history(qtbot: QtBot, tmp_path: Path, demo_model: Path) -> None:
    path = project(tmp_path / "p.instproj", steps=(4,))
    window = window_on(qtbot, path, tmp_path / "home", demo_model)
    assert window.queue.render_thread is not None
    progress: list[tuple[int, int, int]] = []
    window.queue.render_thread.jobProgress.connect(lambda *args: progress.append(args))
    with qtbot.waitSignal(window.queue.render_thread.jobEnded, timeout=120_000) as ended:
        window.commands.render.trigger()
    result: JobResult = ended.args[0]
    assert result.outcome is Outcome.DONE, result.error
    assert progress and progress[-1][1] == progress[-1][2]
    qtbot.waitUntil(lambda: window.history.list.count() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: not window.canvas._background.pixmap().isNull(), timeout=10_000)
    qtbot.waitUntil(lambda: window.scene_list.model.scenes[0].state.value == "rendered", timeout=10_000)

    def job_tooltip() -> str:
        row = window.queue_panel.tree.topLevelItem(0)
        return "" if row is None else row.toolTip(1)

    # The finished job's row says how long it took and how much the engine reused (nothing, the first time).
    qtbot.waitUntil(lambda: job_tooltip().startswith("rendered in "), timeout=10_000)
    assert job_tooltip().endswith(" s · 0 of 1 instances reused")
    window.close()


def test_the_queue_says_the_model_is_loading_then_shows_the_picture_forming_and_clears_it(
    qtbot: QtBot, tmp_path: Path, demo_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.providers

    real_provider = engine.providers.settings_provider
    loaded = threading.Event()

    def slow_disk(*args: Any, **kwargs: Any) -> Any:  # the model's files take a while to read
        provide = real_provider(*args, **kwargs)
        return lambda model_id: (loaded.wait(60), provide(model_id))[1]

    monkeypatch.setattr(engine.providers, "settings_provider", slow_disk)
    path = project(tmp_path / "p.instproj", steps=(6,))
    window = window_on(qtbot, path, tmp_path / "home", demo_model)
    thread, panel = window.queue.render_thread, window.queue_panel
    assert thread is not None
    shown: list[QPixmap] = []
    previews: list[QImage] = []
    thread.jobPreview.connect(lambda _job, image: (previews.append(image), shown.append(panel.preview.pixmap())))
    window.commands.render.trigger()

    def bar_text() -> str:
        row = panel.tree.topLevelItem(0)
        bar = None if row is None else panel.tree.itemWidget(row, 3)
        return bar.format() if isinstance(bar, QProgressBar) else ""

    # Before the first step: what it is doing, on the job's bar and where the preview will be (not "0%").
    qtbot.waitUntil(lambda: bar_text() == "loading the model…", timeout=30_000)
    assert panel.preview.text() == "loading the model…"
    with qtbot.waitSignal(thread.jobEnded, timeout=60_000) as ended:
        loaded.set()
    assert ended.args[0].outcome is Outcome.DONE
    # The previews are the picture forming (the demo VAE decodes the latents), at the image's size, not 16x16.
    assert previews and all(image.width() >= 64 and image.height() >= 64 for image in previews)
    assert all(pixmap.width() >= 64 for pixmap in shown)
    # Once it ends, the preview goes.
    qtbot.waitUntil(lambda: panel.preview.pixmap().isNull(), timeout=10_000)
    assert panel.preview.text() == "no render running"
    window.close()
    with Project.open(path) as opened, opened.read() as session:
        (render,) = session.query(Render).all()
        final = np.asarray(Image.open(io.BytesIO(render.png)).convert("RGB"))
    last = previews[-1].convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(last.constBits(), np.uint8).reshape(last.height(), last.bytesPerLine())
    assert np.array_equal(pixels[:, : 3 * last.width()].reshape(last.height(), last.width(), 3), final)


def test_after_a_crash_the_queue_says_why_it_is_paused_and_a_new_job_comes_into_view(
    qtbot: QtBot, tmp_path: Path, demo_model: Path
) -> None:
    path = project(tmp_path / "p.instproj", steps=(2,))
    with Project.open(path) as opened, opened.write() as session:
        scene = find_scene(session, "s0")
        for _ in range(40):
            queue_scene(session, scene)
        claim_next(session)  # ...and the app dies while rendering it
    window = window_on(qtbot, path, tmp_path / "home", demo_model)
    thread, panel = window.queue.render_thread, window.queue_panel
    assert thread is not None
    qtbot.waitUntil(lambda: len(panel.jobs) == 40, timeout=10_000)
    # Why it is paused, with the way out beside it; the job list's own refreshes do not wipe it.
    assert panel.pause_note.isVisible() and "did not close cleanly" in panel.pause_note.text()
    assert panel.resume_button.isVisible()
    note, resume = panel.pause_note.geometry(), panel.resume_button.geometry()
    assert note.right() < resume.left() and note.top() < resume.center().y() < note.bottom()

    window.commands.render.trigger()  # a new job, queued behind forty
    qtbot.waitUntil(lambda: len(panel.jobs) == 41, timeout=10_000)
    newest = panel.tree.topLevelItem(panel.tree.topLevelItemCount() - 1)
    assert newest is not None and int(newest.text(0)) == max(job.id for job in panel.jobs)
    row, view = panel.tree.visualItemRect(newest), panel.tree.viewport().rect()
    assert view.top() <= row.top() and row.bottom() <= view.bottom(), "the new job is in view"
    assert panel.pause_note.isVisible()

    with qtbot.waitSignal(thread.jobStarted, timeout=60_000):
        qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
    assert not panel.pause_note.isVisible() and not panel.resume_button.isVisible()
    assert not panel.pause_button.isChecked()
    window.close()


def test_cancelling_a_pending_job_leaves_the_running_one_alone(qtbot: QtBot, tmp_path: Path, demo_model: Path) -> None:
    path = project(tmp_path / "p.instproj", steps=(60, 4))
    window = window_on(qtbot, path, tmp_path / "home", demo_model)
    thread = window.queue.render_thread
    assert thread is not None
    started: list[int] = []
    thread.jobStarted.connect(lambda job: started.append(job.id))
    window.commands.render_all.trigger()
    qtbot.waitUntil(lambda: len(started) == 1, timeout=60_000)
    qtbot.waitUntil(  # the panel shows one running, one pending
        lambda: sorted(job.status.value for job in window.queue_panel.jobs) == ["pending", "running"], timeout=10_000
    )
    pending = next(job.id for job in window.queue_panel.jobs if job.status is JobStatus.PENDING)
    with qtbot.waitSignal(thread.jobEnded, timeout=120_000) as ended:
        window.queue.cancel_job(pending)
    assert ended.args[0].job.id == started[0] and ended.args[0].outcome is Outcome.DONE
    window.close()
    with Project.open(path) as opened, opened.read() as session:
        statuses = {job.id: job.status for job in list_jobs(session)}
    assert statuses == {started[0]: JobStatus.DONE, pending: JobStatus.CANCELLED}


def test_cancelling_the_running_job_shows_at_once_and_ends_it_cancelled(
    qtbot: QtBot, tmp_path: Path, demo_model: Path
) -> None:
    path = project(tmp_path / "p.instproj", steps=(400,))
    window = window_on(qtbot, path, tmp_path / "home", demo_model)
    thread, panel = window.queue.render_thread, window.queue_panel
    assert thread is not None
    steps: list[int] = []
    thread.jobProgress.connect(lambda _job, step, _total: steps.append(step))
    window.commands.render.trigger()
    qtbot.waitUntil(
        lambda: len(steps) >= 2 and bool(panel.jobs) and panel.jobs[0].status is JobStatus.RUNNING, timeout=60_000
    )
    item = panel.tree.topLevelItem(0)
    assert item is not None
    qtbot.mouseClick(panel.tree.viewport(), Qt.MouseButton.LeftButton, pos=panel.tree.visualItemRect(item).center())
    job_id = panel.selected_job()
    with qtbot.waitSignal(thread.jobEnded, timeout=60_000) as ended:
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        # At once, before the render has seen it: the row and its bar say so, and cancel is not offered twice.
        row = panel.tree.topLevelItem(0)
        assert row is not None and row.text(2) == "cancelling…"
        bar = panel.tree.itemWidget(row, 3)
        assert isinstance(bar, QProgressBar) and bar.format() == "cancelling…"
        assert not panel.cancel_button.isEnabled()
    result: JobResult = ended.args[0]
    assert result.job.id == job_id and result.outcome is Outcome.CANCELLED and max(steps) < 400
    qtbot.waitUntil(lambda: panel.jobs[0].status is JobStatus.CANCELLED, timeout=10_000)
    row = panel.tree.topLevelItem(0)
    assert row is not None and row.text(2) == "cancelled"
    window.close()
    with Project.open(path) as opened, opened.read() as session:
        (job,) = list_jobs(session)
    assert job.status is JobStatus.CANCELLED


def test_closing_mid_render_puts_the_job_back_and_stops_the_thread(
    qtbot: QtBot, tmp_path: Path, demo_model: Path
) -> None:
    path = project(tmp_path / "p.instproj", steps=(400,))
    window = window_on(qtbot, path, tmp_path / "home", demo_model)
    thread = window.queue.render_thread
    assert thread is not None
    steps: list[int] = []
    thread.jobProgress.connect(lambda _job, step, _total: steps.append(step))
    window.commands.render.trigger()
    qtbot.waitUntil(lambda: len(steps) >= 2, timeout=60_000)
    window.close()
    assert thread.isFinished() and not thread.isRunning()
    assert not [t for t in window.findChildren(QThread) if t.isRunning()]
    with Project.open(path) as opened, opened.read() as session:
        (job,) = list_jobs(session)
    assert job.status is JobStatus.PENDING and job.attempts == 0


def test_a_sweep_renders_the_grid_and_the_history_restores_and_compares(
    qtbot: QtBot, tmp_path: Path, demo_model: Path
) -> None:
    from PySide6.QtWidgets import QDialog

    from desktop.sweep import CELL, LABEL_HEIGHT

    path = project(tmp_path / "p.instproj", steps=(2,))
    window = window_on(qtbot, path, tmp_path / "home", demo_model)
    thread = window.queue.render_thread
    assert thread is not None
    ended: list[JobResult] = []
    thread.jobEnded.connect(ended.append)
    window.session.render_sweep(([5, 6], [0.75], [0.0, 0.36]))
    qtbot.waitUntil(lambda: len(ended) == 4, timeout=120_000)
    assert all(r.outcome is Outcome.DONE for r in ended)
    assert sorted((r.job.request.seed, r.job.request.mis) for r in ended) == [(5, 0.0), (5, 0.36), (6, 0.0), (6, 0.36)]
    qtbot.waitUntil(lambda: window.history.list.count() == 4, timeout=10_000)

    window.history.sheetRequested.emit(window.history.entries)
    qtbot.waitUntil(lambda: bool(window.findChildren(QDialog, "")), timeout=10_000)
    from desktop.sweep import ContactSheetDialog

    qtbot.waitUntil(lambda: bool(window.findChildren(ContactSheetDialog)), timeout=10_000)
    sheet = window.findChildren(ContactSheetDialog)[0].sheet
    assert (sheet.width(), sheet.height()) == (4 * CELL, CELL + LABEL_HEIGHT)

    # Move the instance, then restore the layout of a render: one undo step puts the move back.
    scene = window.editor.scene
    first = window.history.entries[-1]
    window.editor.set_selection([scene.instances[0].uid])
    window.canvas.nudge(20, 0)
    assert window.editor.scene.instances[0].spec.box != scene.instances[0].spec.box
    window.history_control.restore_layout(first)
    restored = window.editor.scene
    assert restored.instances[0].spec == first.request.instances[0] and restored.seed == first.request.seed
    window.commands.undo.trigger()
    assert window.editor.scene.seed == scene.seed
    assert window.editor.scene.instances[0].spec.box != scene.instances[0].spec.box  # the nudge is back
    window.close()


def slow_model_app(path: Path, home: Path, demo_model: Path, mode: str) -> subprocess.Popen[str]:
    """The real app in its own process, on a model that loads for minutes (tests/desktop/slow_model_child.py)."""
    home.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.desktop.slow_model_child", str(path), str(home), mode],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, DEMO_MODEL_ENV: str(demo_model), "OMP_NUM_THREADS": "1"},
    )


def test_quitting_while_the_model_loads_puts_the_job_back_and_exits_cleanly(tmp_path: Path, demo_model: Path) -> None:
    # The user's report: Ctrl+Q during a long render froze the window 30 s, then "QThread: Destroyed while
    # thread 'render-engine' is still running" and an abort (exit 134). Here the engine is in a call it
    # cannot interrupt (the model loads for minutes) when the user quits, in the real app in its own process.
    path = project(tmp_path / "p.instproj", steps=(20,))
    started = time.monotonic()
    proc = slow_model_app(path, tmp_path / "home", demo_model, "quit")
    out, err = proc.communicate(timeout=100)
    assert "quitting" in out, err
    assert proc.returncode == 0, err
    assert "Destroyed while thread" not in err
    assert "Job 1 is back in the queue" in out  # what the window told the user
    assert time.monotonic() - started < 90  # not the model's two minutes
    with Project.open(path) as opened, opened.read() as session:
        (job,) = list_jobs(session)
    assert job.status is JobStatus.PENDING and job.attempts == 0


def test_a_job_cancelled_just_before_a_crash_stays_cancelled(tmp_path: Path, demo_model: Path) -> None:
    # The user's report: cancel showed nothing, and after a crash the cancelled job was back as pending.
    # The click lands while the engine cannot stop yet (the model is loading); then the app is killed.
    path = project(tmp_path / "p.instproj", steps=(20,))
    proc = slow_model_app(path, tmp_path / "home", demo_model, "cancel")
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while "cancel stored" not in lines and time.monotonic() < deadline and proc.poll() is None:
        lines.append(proc.stdout.readline().strip())
    proc.kill()
    _, err = proc.communicate(timeout=30)
    assert "cancel clicked: cancelling…" in lines, (lines, err)  # shown at once, before the render noticed
    assert "cancel stored" in lines, (lines, err)
    with Project.open(path) as opened, opened.read() as session:
        (job,) = list_jobs(session)
    assert job.status is JobStatus.CANCELLED
