"""Render → Render on…: the choice between this machine and a Ray cluster, remembered; the cluster thread
says in the queue's pause line why it cannot render."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QSettings
from pytestqt.qtbot import QtBot

from desktop.cluster_thread import ClusterRenderThread
from desktop.render_target import RenderTarget, RenderTargetDialog, load_render_target, save_render_target
from projects.database import Project
from rendering import cluster
from rendering.cluster import RAY_MISSING, ClusterError


def test_the_choice_is_made_in_the_dialog_and_remembered(qtbot: QtBot, tmp_path: Path) -> None:
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    assert load_render_target(settings) == RenderTarget()  # this machine until told otherwise
    dialog = RenderTargetDialog(RenderTarget())
    qtbot.addWidget(dialog)
    assert dialog.local.isChecked() and not dialog.address.isEnabled()
    dialog.cluster.setChecked(True)
    assert dialog.address.isEnabled()
    dialog.address.setText("  10.0.0.5:6379 ")
    save_render_target(settings, dialog.target())
    assert load_render_target(settings) == RenderTarget("10.0.0.5:6379")
    dialog.address.setText("")
    assert dialog.target() == RenderTarget("auto")  # an empty address: a Ray on this machine
    dialog.local.setChecked(True)
    save_render_target(settings, dialog.target())
    assert load_render_target(settings) == RenderTarget()
    assert RenderTarget("auto").words == "a Ray on this machine"


def test_a_cluster_that_cannot_be_used_pauses_the_queue_with_the_reason(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_ray() -> None:
        raise ClusterError(RAY_MISSING)

    monkeypatch.setattr(cluster, "import_ray", no_ray)
    with Project.create(tmp_path / "p.instproj") as project:
        thread = ClusterRenderThread(project, "auto", settings_path=None, demo_dir=None)
        with qtbot.waitSignal(thread.pausedChanged, timeout=10_000) as paused:
            thread.start()
        assert thread.wait(10_000)
    assert paused.args == [True, f"Not rendering: {RAY_MISSING}"] and thread.paused
