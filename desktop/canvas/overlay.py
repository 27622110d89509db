"""Messages laid over the canvas (the pre-flight warnings, the first-run hint): they never push the canvas
around as they come and go, and they follow its width."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QWidget

MARGIN = 8


class CanvasOverlay(QLabel):
    """A word-wrapped label pinned to the top or the bottom edge of `host`, over it."""

    def __init__(self, host: QWidget, *, bottom: bool = False, object_name: str = "") -> None:
        super().__init__(host)
        self.host = host
        self.bottom = bottom
        if object_name:
            self.setObjectName(object_name)
        self.setWordWrap(True)
        self.setTextFormat(Qt.TextFormat.RichText)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # clicks go to the canvas
        self.hide()
        host.installEventFilter(self)

    def show_text(self, html: str) -> None:
        """Show `html`, or hide the overlay when it is empty."""
        self.setText(html)
        self.setVisible(bool(html))
        self.place()

    def place(self) -> None:
        width = max(100, self.host.width() - 2 * MARGIN)
        height = self.heightForWidth(width) if self.text() else 0
        y = self.host.height() - height - MARGIN if self.bottom else MARGIN
        self.setGeometry(MARGIN, y, width, max(height, 0))
        self.raise_()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.host and event.type() == QEvent.Type.Resize:
            self.place()
        return False
