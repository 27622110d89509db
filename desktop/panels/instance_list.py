"""The instance list: slot order (drag to reorder: it is the model's slot order), captions edited in place,
kind, lock, delete, and a count against the slot limit. Selection is shared with the canvas."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QBrush, QColor
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

from desktop.editor.connections import Connections
from desktop.editor.scene_editor import SceneEditor
from desktop.icons import icon
from desktop.panels.row_drag import DragToReorder, reordered
from engine.request import MAX_INSTANCES, InstanceKind
from projects.scene_data import InstanceData

_MIME = "application/x-instance-studio-slot"
Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()  # the invisible root: the default parent of a flat model

COL_SLOT, COL_CAPTION, COL_KIND, COL_LOCK = range(4)
HEADERS = ("#", "Caption", "Kind", "Lock")


class InstanceTableModel(DragToReorder, QAbstractTableModel):
    """The current scene's instances as rows. Edits go to the scene's editor."""

    drag_mime = _MIME

    def __init__(self) -> None:
        super().__init__()
        self.editor: SceneEditor | None = None
        self._links = Connections()

    def set_editor(self, editor: SceneEditor | None) -> None:
        self._links.clear()
        self.editor = editor
        if editor is not None:
            self._links.connect(editor.document.instancesChanged, self._reset)
            self._links.connect(editor.document.instanceChanged, self._row_changed)
        self._reset()

    @property
    def instances(self) -> tuple[InstanceData, ...]:
        return self.editor.scene.instances if self.editor else ()

    def _reset(self) -> None:
        self.beginResetModel()
        self.endResetModel()

    def _row_changed(self, uid: int) -> None:
        scene = self.editor.scene if self.editor else None
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
        if not index.isValid() or self.editor is None:
            return False
        before = self.instances[index.row()]
        if index.column() == COL_CAPTION and role == Qt.ItemDataRole.EditRole:
            if str(value).strip() == before.caption:
                return False
            self.editor.set_caption(before.uid, str(value))
            return True
        if index.column() == COL_LOCK and role == Qt.ItemDataRole.CheckStateRole:
            self.editor.set_locked(before.uid, Qt.CheckState(value) == Qt.CheckState.Checked)
            return True
        return False

    # --- drag to reorder -------------------------------------------------------------------

    def move_rows(self, rows: list[int], to: int) -> None:
        """Move the instances in `rows` so they sit before slot `to` (in their order)."""
        if self.editor is not None:
            self.editor.reorder(reordered(self.instances, rows, to))


def _kind_label(inst: InstanceData) -> str:
    spec = inst.spec
    if spec.kind is InstanceKind.MASK:
        return "polygon" if spec.polygon else "mask"
    return spec.kind.value


class InstanceListPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.model = InstanceTableModel()
        self._links = Connections()
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
        self.delete_button.clicked.connect(lambda: self.editor.delete_selected() if self.editor else None)
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
        self.model.modelReset.connect(self._document_selection)
        self.model.modelReset.connect(self._update_count)
        self._update_count()

    @property
    def editor(self) -> SceneEditor | None:
        return self.model.editor

    def set_editor(self, editor: SceneEditor | None) -> None:
        self._links.clear()
        if editor is not None:
            self._links.connect(editor.document.selectionChanged, self._document_selection)
        self.model.set_editor(editor)

    def _update_count(self) -> None:
        count = len(self.model.instances)
        self.count_label.setText(f"{count} / {MAX_INSTANCES} instances")
        self.count_label.setProperty("full", count >= MAX_INSTANCES)

    def _table_selection(self, *_: QItemSelection) -> None:
        if self._syncing or self.editor is None:
            return
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        self.editor.set_selection(inst.uid for r, inst in enumerate(self.model.instances) if r in rows)

    def _document_selection(self) -> None:
        self._syncing = True
        try:
            selection = QItemSelection()
            wanted = set(self.editor.selection) if self.editor else set()
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
