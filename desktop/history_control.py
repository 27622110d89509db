"""The history strip's commands: show a render on the canvas, compare two, a contact sheet, and restore a
render's layout and settings into the scene (one undoable step in its editor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QImage

from desktop.compare import CompareDialog
from desktop.sweep import ContactSheetDialog, contact_sheet
from projects.scene_data import HistoryEntry
from projects.scene_settings import SceneSettings

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


class HistoryControl(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.images = window.images
        strip = window.history
        strip.showRequested.connect(self.show_render)
        strip.restoreRequested.connect(self.restore_layout)
        strip.compareRequested.connect(self.compare_renders)
        strip.sheetRequested.connect(self.show_contact_sheet)

    def show_render(self, render_id: int) -> None:
        self.images.when_loaded({render_id}, lambda: self.window.canvas.set_background(self.images.image(render_id)))

    def show_latest(self, png: bytes | None) -> None:
        """The scene's latest render (or none) under its instances."""
        self.window.canvas.set_background(QImage.fromData(png) if png else None)

    def compare_renders(self, before: int, after: int) -> None:
        def show() -> None:
            images = (self.images.image(before), self.images.image(after))
            dialog = CompareDialog(*images, (f"#{before}", f"#{after}"), self.window)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.show()

        self.images.when_loaded({before, after}, show)

    def show_contact_sheet(self, entries: list[HistoryEntry]) -> None:
        def show() -> None:
            items = [(self.images.image(e.render_id), e.request) for e in reversed(entries)]
            dialog = ContactSheetDialog(contact_sheet(items), self.window)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.show()

        if entries:
            self.images.when_loaded({e.render_id for e in entries}, show)

    def restore_layout(self, entry: HistoryEntry) -> None:
        """Put the scene back to the layout and settings of a render, as one undoable step."""
        editor, defaults = self.window.editor, self.window.session.defaults
        if editor is None or defaults is None:
            return
        settings = SceneSettings.from_request(entry.request, defaults, keep=editor.scene.settings)
        editor.restore(entry.request, settings)
        self.window.show_message(f"Restored the layout of render #{entry.render_id}")
