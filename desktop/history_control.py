"""The history strip's commands: show a render on the canvas (with the instances it missed outlined), compare
two, a contact sheet, and restore a render's layout and settings into the scene (one undoable step in its
editor)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QImage

from desktop.canvas.missed_outlines import missed_outlines
from desktop.compare import CompareDialog
from desktop.placement_dialog import PlacementThresholdsDialog
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
        strip.entriesChanged.connect(self._entries_changed)
        # The latest render went under the instances before its history entry (with its check) arrived.
        self._latest_shown = False

    def show_render(self, render_id: int) -> None:
        def show() -> None:
            self._latest_shown = False
            self.window.canvas.set_background(self.images.image(render_id))
            self._outline_missed(render_id)

        self.images.when_loaded({render_id}, show)

    def show_latest(self, png: bytes | None) -> None:
        """The scene's latest render (or none) under its instances; what it missed is outlined once the
        history (which the session always loads with it) arrives."""
        self.window.canvas.set_background(QImage.fromData(png) if png else None)
        self._latest_shown = png is not None

    def _entries_changed(self) -> None:
        entries, canvas = self.window.history.entries, self.window.canvas
        if self._latest_shown and entries:
            self._latest_shown = False
            self._outline_missed(entries[0].render_id)
        elif canvas.missed_render is not None:  # the same render, judged again (the thresholds changed)
            self._outline_missed(canvas.missed_render)

    def _outline_missed(self, render_id: int) -> None:
        entry = next((e for e in self.window.history.entries if e.render_id == render_id), None)
        if entry is not None:
            self.window.canvas.show_missed(render_id, missed_outlines(entry))

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

    def edit_thresholds(self) -> PlacementThresholdsDialog | None:
        """Render → Placement check…: the project's thresholds, read and stored on the store's thread."""
        store = self.window.store
        if store is None:
            return None
        dialog = PlacementThresholdsDialog(self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        store.thresholdsLoaded.connect(dialog.set_thresholds)
        dialog.accepted.connect(lambda: store.set_thresholds(dialog.thresholds()))
        store.load_thresholds()
        dialog.open()
        return dialog

    def restore_layout(self, entry: HistoryEntry) -> None:
        """Put the scene back to the layout and settings of a render, as one undoable step."""
        editor, defaults = self.window.editor, self.window.session.defaults
        if editor is None or defaults is None:
            return
        settings = SceneSettings.from_request(entry.request, defaults, keep=editor.scene.settings)
        editor.restore(entry.request, settings)
        self.window.show_message(f"Restored the layout of render #{entry.render_id}")
