"""Messages laid over the canvas (the pre-flight warnings, the first-run hint, the legend of what a render
missed): they never push the canvas around as they come and go, and they follow its width. Overlays on the
same edge stack instead of covering each other."""

from __future__ import annotations

import itertools

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QWidget

MARGIN = 8
_made = itertools.count()  # the order overlays were made in: raising one reorders the host's children


class CanvasOverlay(QLabel):
    """A word-wrapped label pinned to the top or the bottom edge of `host`, over it."""

    def __init__(self, host: QWidget, *, bottom: bool = False, object_name: str = "") -> None:
        super().__init__(host)
        self.host = host
        self.bottom = bottom
        self.order = next(_made)
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
        for overlay in self._same_edge():  # the ones stacked after this one move with it
            overlay.place()

    def place(self) -> None:
        width = max(100, self.host.width() - 2 * MARGIN)
        offset = MARGIN
        for overlay in self._same_edge():  # the ones made before this one are nearer the edge
            if overlay is self:
                break
            offset += overlay._height(width) + MARGIN // 2
        height = self._height(width)
        y = self.host.height() - height - offset if self.bottom else offset
        self.setGeometry(MARGIN, y, width, height)
        self.raise_()

    def _height(self, width: int) -> int:
        return max(self.heightForWidth(width), 0) if self.text() else 0

    def _same_edge(self) -> list[CanvasOverlay]:
        """The overlays on this edge that are shown, and this one, in the order they were made."""
        overlays = [
            child
            for child in self.host.children()
            if isinstance(child, CanvasOverlay)
            and child.bottom == self.bottom
            and (child is self or not child.isHidden())
        ]
        return sorted(overlays, key=lambda overlay: overlay.order)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.host and event.type() == QEvent.Type.Resize:
            self.place()
        return False
