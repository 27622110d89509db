"""The caption typed in place over a new or double-clicked instance: each keystroke shows on the canvas
and in the instance list as it is typed; Enter (or clicking elsewhere) keeps it as one undo step, Esc
puts the caption back as it was."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent
from PySide6.QtWidgets import QLineEdit, QWidget

from desktop.editor.scene_editor import CaptionTyping


class CaptionEditor(QLineEdit):
    finished = Signal()  # kept or dropped: the editor is closing

    def __init__(self, typing: CaptionTyping, parent: QWidget) -> None:
        super().__init__(parent)
        self.typing = typing
        self._done = False
        self.setObjectName("captionEditor")
        self.setPlaceholderText("caption, e.g. a red circle")
        self.setText(typing.original)
        self.selectAll()
        self.textEdited.connect(typing.preview)
        self.returnPressed.connect(self.keep)

    def keep(self) -> None:
        if not self._done:
            self._done = True
            self.typing.commit(self.text())
            self.finished.emit()

    def drop(self) -> None:
        if not self._done:
            self._done = True
            self.typing.cancel()
            self.finished.emit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.drop()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        super().focusOutEvent(event)
        if event.reason() != Qt.FocusReason.PopupFocusReason:  # the context menu is not leaving
            self.keep()
