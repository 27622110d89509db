"""The instance list: slot order (drag to reorder: it is the model's slot order), captions edited in place,
kind, lock, delete, and a count against the slot limit. Selection is shared with the canvas."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QBrush, QColor, QUndoCommand
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.commands import EditInstanceCommand, SetInstancesCommand
from desktop.document import MAX_INSTANCES, SceneDocument
from desktop.icons import icon
from desktop.panels.row_drag import DragToReorder, reordered
from desktop.scene_data import InstanceData

_MIME = "application/x-instance-studio-slot"
Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()  # the invisible root: the default parent of a flat model

COL_SLOT, COL_CAPTION, COL_KIND, COL_LOCK = range(4)
HEADERS = ("#", "Caption", "Kind", "Lock")


class InstanceTableModel(DragToReorder, QAbstractTableModel):
    """The document's instances as rows. Edits become undo commands through `push`."""

    drag_mime = _MIME

    def __init__(self, document: SceneDocument, push: Callable[[QUndoCommand], None]) -> None:
        super().__init__()
        self.document = document
        self.push = push
        document.sceneReplaced.connect(self._reset)
        document.instancesChanged.connect(self._reset)
        document.instanceChanged.connect(self._row_changed)

    @property
    def instances(self) -> tuple[InstanceData, ...]:
        scene = self.document.scene
        return scene.instances if scene else ()

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def _row_changed(self, uid: int) -> None:
        scene = self.document.scene
        if scene is None or scene.instance(uid) is None:
            return
        row = scene.index_of(uid)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(HEADERS) - 1))

    def rowCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.instances)

    def columnCount(self, parent: Index = _ROOT) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        inst = self.instances[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if column == COL_SLOT:
                return index.row() + 1
            if column == COL_CAPTION:
                return inst.caption if role == Qt.ItemDataRole.EditRole or inst.caption else "(no caption)"
            if column == COL_KIND:
                return _kind_label(inst)
        if role == Qt.ItemDataRole.CheckStateRole and column == COL_LOCK:
            return Qt.CheckState.Checked if inst.locked else Qt.CheckState.Unchecked
        if role == Qt.ItemDataRole.DecorationRole and column == COL_SLOT:
            return QColor(inst.color)
        if role == Qt.ItemDataRole.ForegroundRole and column == COL_CAPTION and not inst.caption:
            return QBrush(QColor("#d89614"))
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"slot {index.row() + 1}: {inst.caption or 'no caption yet'} ({_kind_label(inst)})"
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
        if not index.isValid():
            return Qt.ItemFlag.ItemIsDropEnabled
        if index.column() == COL_CAPTION:
            return base | Qt.ItemFlag.ItemIsEditable
        if index.column() == COL_LOCK:
            return base | Qt.ItemFlag.ItemIsUserCheckable
        return base

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid():
            return False
        before = self.instances[index.row()]
        if index.column() == COL_CAPTION and role == Qt.ItemDataRole.EditRole:
            caption = str(value).strip()
            if caption == before.caption:
                return False
            after = before.with_spec(dataclasses.replace(before.spec, caption=caption))
            self.push(EditInstanceCommand(self.document, before, after, "Edit caption"))
            return True
        if index.column() == COL_LOCK and role == Qt.ItemDataRole.CheckStateRole:
            locked = Qt.CheckState(value) == Qt.CheckState.Checked
            after = dataclasses.replace(before, locked=locked)
            self.push(EditInstanceCommand(self.document, before, after, "Lock" if locked else "Unlock"))
            return True
        return False

    # --- drag to reorder -------------------------------------------------------------------

    def move_rows(self, rows: list[int], to: int) -> None:
        """Move the instances in `rows` so they sit before slot `to` (in their order)."""
        instances = self.instances
        after = tuple(reordered(instances, rows, to))
        if after != instances:
            self.push(SetInstancesCommand(self.document, instances, after, "Reorder instances"))


def _kind_label(inst: InstanceData) -> str:
    spec = inst.spec
    if spec.kind.value == "mask":
        return "polygon" if spec.polygon else "mask"
    return spec.kind.value


class InstanceListPanel(QWidget):
    def __init__(
        self, document: SceneDocument, push: Callable[[QUndoCommand], None], delete: Callable[[], None]
    ) -> None:
        super().__init__()
        self.document = document
        self.model = InstanceTableModel(document, push)
        self.table = QTableView()
        self.table.setObjectName("instanceTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.table.setDragEnabled(True)
        self.table.setAcceptDrops(True)
        self.table.setDropIndicatorShown(True)
        self.table.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
            | QAbstractItemView.EditTrigger.SelectedClicked
        )
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_CAPTION, QHeaderView.ResizeMode.Stretch)
        for column in (COL_SLOT, COL_KIND, COL_LOCK):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)

        self.count_label = QLabel()
        self.count_label.setObjectName("instanceCount")
        self.delete_button = QToolButton()
        self.delete_button.setIcon(icon("delete"))
        self.delete_button.setToolTip("Delete the selected instances (Delete)")
        self.delete_button.clicked.connect(delete)
        self.up_button = QToolButton()
        self.up_button.setIcon(icon("move-up"))
        self.up_button.setToolTip("Move up one slot")
        self.up_button.clicked.connect(lambda: self._shift(-1))
        self.down_button = QToolButton()
        self.down_button.setIcon(icon("move-down"))
        self.down_button.setToolTip("Move down one slot")
        self.down_button.clicked.connect(lambda: self._shift(1))

        bar = QHBoxLayout()
        bar.addWidget(self.count_label)
        bar.addStretch(1)
        for button in (self.up_button, self.down_button, self.delete_button):
            bar.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table)
        layout.addLayout(bar)

        self._syncing = False
        self.table.selectionModel().selectionChanged.connect(self._table_selection)
        document.selectionChanged.connect(self._document_selection)
        document.sceneReplaced.connect(self._update_count)
        document.instancesChanged.connect(self._update_count)
        self.model.modelReset.connect(self._document_selection)
        self._update_count()

    def _update_count(self) -> None:
        count = len(self.model.instances)
        self.count_label.setText(f"{count} / {MAX_INSTANCES} instances")
        self.count_label.setProperty("full", count >= MAX_INSTANCES)

    def _table_selection(self, *_: QItemSelection) -> None:
        if self._syncing:
            return
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        self.document.set_selection(inst.uid for r, inst in enumerate(self.model.instances) if r in rows)

    def _document_selection(self) -> None:
        self._syncing = True
        try:
            selection = QItemSelection()
            wanted = set(self.document.selection)
            for row, inst in enumerate(self.model.instances):
                if inst.uid in wanted:
                    selection.select(self.model.index(row, 0), self.model.index(row, len(HEADERS) - 1))
            self.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        finally:
            self._syncing = False

    def _shift(self, delta: int) -> None:
        rows = sorted(index.row() for index in self.table.selectionModel().selectedRows())
        if not rows:
            return
        target = rows[0] + delta if delta < 0 else rows[-1] + 2
        if target < 0 or target > len(self.model.instances):
            return
        self.model.move_rows(rows, target)
