"""The scene list: a thumbnail, the name and the render state of every scene; add, duplicate, delete, and
drag to reorder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QListView, QToolButton, QVBoxLayout, QWidget

from desktop.icons import icon
from desktop.panels.row_drag import DragToReorder, reordered
from projects.scene_data import SceneState, SceneSummary

_MIME = "application/x-instance-studio-scene"
THUMB = 48
Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()  # the invisible root: the default parent of a flat model
SceneIdRole = Qt.ItemDataRole.UserRole + 1
StateRole = Qt.ItemDataRole.UserRole + 2

STATE_COLORS = {
    SceneState.NEVER_RENDERED: "#8a8d93",
    SceneState.QUEUED: "#d8b45a",
    SceneState.RENDERING: "#4f8cff",
    SceneState.RENDERED: "#52c41a",
    SceneState.FAILED: "#ff4d4f",
    SceneState.CHANGED: "#fa8c16",
}


class SceneListModel(DragToReorder, QAbstractListModel):
    reorderRequested = Signal(list)  # scene ids in the new order
    drag_mime = _MIME

    def __init__(self) -> None:
        super().__init__()
        self.scenes: list[SceneSummary] = []
        self._icons: dict[int, tuple[tuple[bytes | None, SceneState], QIcon]] = {}

    def set_scenes(self, scenes: tuple[SceneSummary, ...]) -> None:
        self.beginResetModel()
        self.scenes = list(scenes)
        self.endResetModel()

    def update_scene(self, summary: SceneSummary) -> None:
        for row, scene in enumerate(self.scenes):
            if scene.scene_id == summary.scene_id:
                self.scenes[row] = summary
                self.dataChanged.emit(self.index(row), self.index(row))
                return

    def row_of(self, scene_id: int) -> int:
        return next((r for r, s in enumerate(self.scenes) if s.scene_id == scene_id), -1)

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.scenes)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        scene = self.scenes[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{scene.name}\n{scene.state.value} · {scene.instance_count} instances"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(scene)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{scene.name} (id {scene.scene_id}): {scene.state.value}"
        if role == SceneIdRole:
            return scene.scene_id
        if role == StateRole:
            return scene.state.value
        return None

    def _icon(self, scene: SceneSummary) -> QIcon:
        cached = self._icons.get(scene.scene_id)
        key = (scene.thumbnail, scene.state)
        if cached is not None and cached[0] == key:
            return cached[1]
        pixmap = QPixmap(THUMB, THUMB)
        pixmap.fill(QColor("#2f3136"))
        painter = QPainter(pixmap)
        if scene.thumbnail:
            image = QImage.fromData(scene.thumbnail)
            if not image.isNull():
                painter.drawImage(
                    pixmap.rect(), image.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatioByExpanding)
                )
        painter.setBrush(QColor(STATE_COLORS[scene.state]))
        painter.setPen(QColor("#111111"))
        painter.drawEllipse(THUMB - 13, THUMB - 13, 10, 10)  # the state, at a glance
        painter.end()
        result = QIcon(pixmap)
        self._icons[scene.scene_id] = (key, result)
        return result

    # --- drag to reorder -------------------------------------------------------------------

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled

    def move_rows(self, rows: list[int], to: int) -> None:
        ordered = reordered(self.scenes, rows, to)
        if ordered != self.scenes:
            self.set_scenes(tuple(ordered))  # shown at once; the store writes it
            self.reorderRequested.emit([s.scene_id for s in ordered])


class SceneListPanel(QWidget):
    sceneActivated = Signal(int)

    def __init__(self, add: Callable[[], None], duplicate: Callable[[], None], delete: Callable[[], None]) -> None:
        super().__init__()
        self.model = SceneListModel()
        self.view = QListView()
        self.view.setObjectName("sceneList")
        self.view.setModel(self.model)
        self.view.setIconSize(QSize(THUMB, THUMB))
        self.view.setSpacing(2)
        self.view.setUniformItemSizes(True)
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.view.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        buttons = QHBoxLayout()
        for name, tip, slot in (
            ("add-scene", "New scene (Ctrl+N)", add),
            ("duplicate", "Duplicate the scene", duplicate),
            ("delete", "Delete the scene", delete),
        ):
            button = QToolButton()
            button.setIcon(icon(name))
            button.setToolTip(tip)
            button.setObjectName(f"scene-{name}")
            button.clicked.connect(slot)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.view)
        layout.addLayout(buttons)
        self.view.selectionModel().currentChanged.connect(self._current_changed)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.sceneActivated.emit(int(current.data(SceneIdRole)))

    def current_scene_id(self) -> int | None:
        index = self.view.currentIndex()
        return int(index.data(SceneIdRole)) if index.isValid() else None

    def selected_scene_ids(self) -> list[int]:
        return [int(index.data(SceneIdRole)) for index in self.view.selectionModel().selectedIndexes()]

    def select_scene(self, scene_id: int) -> None:
        row = self.model.row_of(scene_id)
        if row >= 0 and self.view.currentIndex().row() != row:
            self.view.setCurrentIndex(self.model.index(row))
