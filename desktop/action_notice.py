"""A note pinned under a tool bar button, saying why its command did nothing ("Not queued: instance 1 has
no caption" under Render), where the user's eyes are, not only in the status bar.

One per window, made on first use; it stays until clicked, until the next note, or for a few seconds.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QTimer
from PySide6.QtGui import QAction, QMouseEvent
from PySide6.QtWidgets import QLabel, QToolBar, QWidget

NOTICE_NAME = "actionNotice"
MARGIN = 4
MAX_WIDTH = 460
PADDING = 16  # the style sheet's horizontal padding and border, with room to spare


class ActionNotice(QLabel):
    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.setObjectName(NOTICE_NAME)
        self.setWordWrap(True)
        self.setStyleSheet(
            "QLabel#actionNotice { background: #5c2320; color: #ffd9d2; border: 1px solid #c8584f;"
            " padding: 6px 10px; border-radius: 4px; }"
        )
        self.setToolTip("Click to dismiss")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.hide()

    def show_at(self, toolbar: QToolBar, action: QAction, text: str, timeout_ms: int = 12000) -> None:
        """Show `text` just below `action`'s button (below the tool bar when the button is not shown)."""
        window = self.parentWidget()
        assert window is not None
        self.setText(text)
        self.setAccessibleName(text)
        self.ensurePolished()  # the style sheet's padding and font count in the size below
        # One line when it fits (a word-wrapped label alone picks a narrow width), wrapped beyond MAX_WIDTH.
        self.setFixedWidth(min(MAX_WIDTH, self.fontMetrics().horizontalAdvance(text) + 2 * PADDING))
        self.setFixedHeight(self.heightForWidth(self.width()))
        button = toolbar.widgetForAction(action)
        if button is not None and button.isVisible():
            anchor = button.mapTo(window, QPoint(0, button.height() + MARGIN))
        elif toolbar.isVisible():
            anchor = toolbar.mapTo(window, QPoint(MARGIN, toolbar.height() + MARGIN))
        else:
            anchor = QPoint(MARGIN, MARGIN)
        x = max(MARGIN, min(anchor.x(), window.width() - self.width() - MARGIN))
        self.move(x, anchor.y())
        self.raise_()
        self.show()
        self._timer.start(timeout_ms)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.hide()
        event.accept()


def show_notice(window: QWidget, toolbar: QToolBar, action: QAction, text: str) -> ActionNotice:
    """The window's notice, made on first use, showing `text` under `action`'s button."""
    notice = window.findChild(ActionNotice, NOTICE_NAME)
    if notice is None:
        notice = ActionNotice(window)
    notice.show_at(toolbar, action, text)
    return notice


def hide_notice(window: QWidget) -> None:
    """Take the window's notice away (the command it was about has just worked)."""
    notice = window.findChild(ActionNotice, NOTICE_NAME)
    if notice is not None:
        notice.hide()
