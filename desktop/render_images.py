"""Full-size renders for the history, the compare view and the contact sheet, loaded once from the
store's thread and kept for the session of the project. Callers say what they need and what to do then;
nothing waits on the disk."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from desktop.store import ProjectStore


class RenderImages(QObject):
    _loaded = Signal(int, object)  # render id, PNG bytes (emitted on the store's thread)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store: ProjectStore | None = None
        self._png: dict[int, bytes] = {}
        self._waiting: list[tuple[set[int], Callable[[], None]]] = []
        self._loaded.connect(self._arrived)

    def image(self, render_id: int) -> QImage:
        """A render loaded before (see `when_loaded`)."""
        return QImage.fromData(self._png[render_id])

    def when_loaded(self, render_ids: set[int], then: Callable[[], None]) -> None:
        """Call `then` on the GUI thread once every one of `render_ids` is loaded (at once if they are)."""
        missing = {i for i in render_ids if i not in self._png}
        if not missing:
            then()
            return
        if self.store is None:
            return
        self._waiting.append((set(render_ids), then))
        for render_id in missing:
            self.store.load_render_image(render_id, self._loaded.emit)

    def clear(self) -> None:
        """The project closed: forget its images and anything still waiting for them."""
        self._png.clear()
        self._waiting.clear()
        self.store = None

    def _arrived(self, render_id: int, png: bytes) -> None:
        self._png[render_id] = png
        have = set(self._png)
        ready = [then for ids, then in self._waiting if ids <= have]
        self._waiting = [(ids, then) for ids, then in self._waiting if not ids <= have]
        for then in ready:
            then()
