"""Where the queue renders: on this machine (the render thread) or on a Ray cluster (desktop.cluster_thread).
Render → Render on…; the choice is remembered in the GUI's QSettings and moves an open project's queue at once."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

RENDER_ON_KEY = "renderOn"  # QSettings: "local" or "cluster"
CLUSTER_ADDRESS_KEY = "clusterAddress"  # QSettings: "auto" or a Ray address
LOCAL_RAY = "auto"


@dataclass(frozen=True)
class RenderTarget:
    """None: this machine; else the Ray address ("auto": a Ray on this machine, started if none runs)."""

    cluster_address: str | None = None

    @property
    def words(self) -> str:
        if self.cluster_address is None:
            return "this machine"
        return (
            "a Ray on this machine"
            if self.cluster_address == LOCAL_RAY
            else f"the Ray cluster at {self.cluster_address}"
        )


def load_render_target(settings: QSettings) -> RenderTarget:
    if settings.value(RENDER_ON_KEY, "local") != "cluster":
        return RenderTarget()
    address = str(settings.value(CLUSTER_ADDRESS_KEY, LOCAL_RAY) or LOCAL_RAY).strip()
    return RenderTarget(address or LOCAL_RAY)


def save_render_target(settings: QSettings, target: RenderTarget) -> None:
    settings.setValue(RENDER_ON_KEY, "local" if target.cluster_address is None else "cluster")
    if target.cluster_address is not None:
        settings.setValue(CLUSTER_ADDRESS_KEY, target.cluster_address)


def ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None


class RenderTargetDialog(QDialog):
    """Render on: this machine / Ray cluster [address]."""

    def __init__(self, target: RenderTarget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Render on")
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        self.local = QRadioButton("This machine")
        self.cluster = QRadioButton("Ray cluster")
        group = QButtonGroup(self)
        group.addButton(self.local)
        group.addButton(self.cluster)
        self.address = QLineEdit(target.cluster_address or LOCAL_RAY)
        self.address.setPlaceholderText("auto, or the cluster's address (e.g. 10.0.0.5:6379)")
        self.address.setToolTip(
            "auto: a Ray on this machine (one worker per GPU, or CPU workers sharing its cores); else the address "
            "`ray start --head` printed. Every node needs Instance Studio and its model files."
        )
        hint = QLabel(
            "The project file stays here: this app stores every render the workers send back.\n"
            "Jobs rendering now go back to the queue and start again where you choose."
        )
        hint.setWordWrap(True)
        self.missing = QLabel("Ray is not installed: pip install 'instance-studio[cluster]'")
        self.missing.setVisible(not ray_installed())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        for widget in (self.local, self.cluster, self.address, self.missing, hint, buttons):
            layout.addWidget(widget)
        (self.cluster if target.cluster_address is not None else self.local).setChecked(True)
        self.cluster.toggled.connect(self.address.setEnabled)
        self.address.setEnabled(self.cluster.isChecked())

    def target(self) -> RenderTarget:
        if self.local.isChecked():
            return RenderTarget()
        return RenderTarget(self.address.text().strip() or LOCAL_RAY)


def choose_render_target(
    parent: QWidget, settings: QSettings, current: RenderTarget, apply: Callable[[RenderTarget], None]
) -> None:
    """Render → Render on…: ask, remember the answer, and `apply` it."""
    dialog = RenderTargetDialog(current, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    target = dialog.target()
    save_render_target(settings, target)
    apply(target)
