"""The history strip under the canvas: every render of the scene, newest first, with what changed since the
round before and its placement check (a badge, a star on the best of a re-roll chain); show one on the canvas,
compare two, or restore a render's layout."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.history_diff import describe_changes
from desktop.icons import icon
from desktop.placement_badges import badge, badged_thumbnail, placement_tooltip
from projects.scene_data import HistoryEntry

THUMB = 64
BADGE_ROLE = Qt.ItemDataRole.UserRole + 1  # the badge's text ("all placed", "2 missed"), or None
STAR_ROLE = Qt.ItemDataRole.UserRole + 2  # True on the best render of a re-roll chain


class HistoryStrip(QWidget):
    showRequested = Signal(int)  # render id: show it on the canvas
    restoreRequested = Signal(object)  # HistoryEntry: put the scene back to its layout
    compareRequested = Signal(int, int)  # two render ids
    sheetRequested = Signal(object)  # list[HistoryEntry]: a contact sheet of them
    entriesChanged = Signal()  # set_entries showed a new list (a render's check may have been re-judged)

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[HistoryEntry] = []
        self.list = QListWidget()
        self.list.setObjectName("historyList")
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setFlow(QListWidget.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setFixedHeight(THUMB + 34)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.itemClicked.connect(lambda item: self.showRequested.emit(int(item.data(Qt.ItemDataRole.UserRole))))
        self.list.itemSelectionChanged.connect(self._update_buttons)

        self.restore_button = QToolButton()
        self.restore_button.setIcon(icon("restore"))
        self.restore_button.setToolTip("Restore this render's layout and settings (undoable)")
        self.restore_button.setObjectName("historyRestore")
        self.restore_button.clicked.connect(self._restore)
        self.compare_button = QToolButton()
        self.compare_button.setIcon(icon("compare"))
        self.compare_button.setToolTip("Compare the two selected renders")
        self.compare_button.setObjectName("historyCompare")
        self.compare_button.clicked.connect(self._compare)
        self.sheet_button = QToolButton()
        self.sheet_button.setIcon(icon("variations"))
        self.sheet_button.setToolTip(
            "Contact sheet of the selected renders (all when none is selected), layouts drawn over"
        )
        self.sheet_button.setObjectName("historySheet")
        self.sheet_button.clicked.connect(
            lambda: self.sheetRequested.emit(self.selected_entries() or list(self.entries))
        )
        buttons = QVBoxLayout()
        buttons.addWidget(self.restore_button)
        buttons.addWidget(self.compare_button)
        buttons.addWidget(self.sheet_button)
        buttons.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    def set_entries(self, entries: list[HistoryEntry]) -> None:
        self.entries = entries
        self.list.clear()
        for index, entry in enumerate(entries):
            older = entries[index + 1] if index + 1 < len(entries) else None
            changes = describe_changes(older.request, entry.request) if older else ["first render"]
            mark = badge(entry)
            thumbnail = badged_thumbnail(entry.thumbnail, THUMB, mark, entry.best_of_chain, self.devicePixelRatioF())
            item = QListWidgetItem(thumbnail, f"#{len(entries) - index} · seed {entry.request.seed}")
            item.setData(Qt.ItemDataRole.UserRole, entry.render_id)
            item.setData(BADGE_ROLE, mark.text if mark else None)
            item.setData(STAR_ROLE, entry.best_of_chain)
            tip = [entry.created, *(changes or ["no change in the layout"])]
            check = placement_tooltip(entry)
            item.setToolTip("\n".join([*tip, "", check] if check else tip))
            self.list.addItem(item)
        self._update_buttons()
        self.entriesChanged.emit()

    def selected_entries(self) -> list[HistoryEntry]:
        ids = {int(item.data(Qt.ItemDataRole.UserRole)) for item in self.list.selectedItems()}
        return [entry for entry in self.entries if entry.render_id in ids]

    def _update_buttons(self) -> None:
        selected = self.selected_entries()
        self.restore_button.setEnabled(len(selected) == 1)
        self.compare_button.setEnabled(len(selected) == 2 or (len(selected) == 1 and len(self.entries) > 1))
        self.sheet_button.setEnabled(bool(self.entries))

    def _restore(self) -> None:
        selected = self.selected_entries()
        if len(selected) == 1:
            self.restoreRequested.emit(selected[0])

    def _compare(self) -> None:
        selected = self.selected_entries()
        if len(selected) == 1:  # compare with the render before it
            index = self.entries.index(selected[0])
            other = self.entries[index + 1] if index + 1 < len(self.entries) else self.entries[index - 1]
            selected = [other, selected[0]]
        if len(selected) == 2:
            older, newer = sorted(selected, key=lambda e: e.render_id)
            self.compareRequested.emit(older.render_id, newer.render_id)
