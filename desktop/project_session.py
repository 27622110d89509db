"""One open project in the window: its store, its defaults, which scene is on the canvas, and keeping the
scene list, the history strip and the queue in step with what the store reports.

The store answers on its own thread with plain data (`desktop.scene_data`); everything here runs on the
GUI thread. Edits made in any scene's editor are handed to the store to save.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDialog, QInputDialog

from desktop.action_notice import hide_notice, show_notice
from desktop.background import cancel_all, wait_all
from desktop.store import ProjectStore
from desktop.sweep import SweepDialog
from desktop.welcome import remember_project
from projects.scene_data import HistoryEntry, ProjectSnapshot, SceneData, SceneSummary
from projects.scene_settings import ProjectDefaults

if TYPE_CHECKING:
    from desktop.main_window import MainWindow


class ProjectSession(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.store: ProjectStore | None = None
        self.snapshot: ProjectSnapshot | None = None
        self._pending_scene: int | None = None  # asked the store for it; not on the canvas yet
        self._incoming: ProjectStore | None = None  # a project being opened, not shown yet
        window.scene_list.sceneActivated.connect(self.activate_scene)
        window.scene_list.model.reorderRequested.connect(self._reorder_scenes)
        window.workbench.edited.connect(self._scene_edited)
        window.queue.renderFinished.connect(self._render_finished)

    @property
    def defaults(self) -> ProjectDefaults | None:
        return self.snapshot.defaults if self.snapshot is not None else None

    # --- opening and closing ---------------------------------------------------------------

    def open(self, path: Path) -> None:
        """Open `path`. The project open now stays open until the new one has opened: a file that is not a
        project (or cannot be read) leaves the window as it was."""
        if self.store is not None and self.store.path is not None and _same_file(self.store.path, path):
            self.window.show_message(f"{path.name} is already open")
            return
        if self._incoming is not None:
            self._incoming.close()
            self._incoming.deleteLater()
        incoming = ProjectStore(self)
        incoming.opened.connect(lambda snapshot: self._switch_to(incoming, snapshot))
        incoming.openFailed.connect(lambda message: self._open_failed(incoming, path, message))
        self._incoming = incoming
        self.window.show_message(f"Opening {path}…", 0)
        incoming.open(path)

    def _switch_to(self, store: ProjectStore, snapshot: ProjectSnapshot) -> None:
        if store is not self._incoming:
            return  # a later open won; that store was closed already
        self._incoming = None
        self.window.close_project()
        w = self.window
        store.sceneLoaded.connect(self._scene_loaded)
        store.scenesChanged.connect(self._scenes_changed)
        store.summaryChanged.connect(w.scene_list.model.update_scene)
        store.sceneAdded.connect(w.scene_list.select_scene)
        store.renderLoaded.connect(self._render_loaded)
        store.jobsChanged.connect(w.queue_panel.set_jobs)
        store.jobsQueued.connect(self._jobs_queued)
        store.historyLoaded.connect(self._history_loaded)
        store.imported.connect(self._imported)
        store.importFailed.connect(lambda message: w.show_message(f"Not imported: {message}", 15000))
        store.queueRefused.connect(self._queue_refused)
        store.thresholdsChanged.connect(self._thresholds_changed)
        store.failed.connect(lambda message: w.show_message(f"Not saved: {message}", 10000))
        store.saved.connect(lambda _id: w.show_message("Saved", 1500))
        self.store = store
        w.images.store = store
        self._opened(snapshot)

    def close(self) -> bool:
        """Stop rendering, write what is pending, close the file. False when no project was open."""
        if self.store is None:
            return False
        self.window.queue.stop()  # the running job goes back to pending within a step
        # Background readers of this project (an export) end before the file closes.
        cancel_all(self.window)
        wait_all(10, self.window)
        store, self.store = self.store, None
        store.close()  # writes what is pending
        store.deleteLater()
        self.snapshot = None
        self._pending_scene = None
        self.window.workbench.clear()
        self.window.scene_list.model.set_scenes(())
        self.window.images.clear()
        return True

    def _open_failed(self, store: ProjectStore, path: Path, message: str) -> None:
        store.close()
        store.deleteLater()
        if store is self._incoming:
            self._incoming = None
            self.window.open_failed(path, message)

    def _opened(self, snapshot: ProjectSnapshot) -> None:
        w, store = self.window, self.store
        assert store is not None
        self.snapshot = snapshot
        path = Path(snapshot.path)
        w.statusBar().clearMessage()
        remember_project(w.settings, path)
        w.setWindowTitle(f"{path.stem} — Instance Studio")
        w.scene_settings.set_defaults(snapshot.defaults)
        w.scene_list.model.set_scenes(snapshot.scenes)
        w.queue_panel.scene_names = {s.scene_id: s.name for s in snapshot.scenes}
        w.queue.start(store, paused=snapshot.unclean_exit)
        w.show_editor()
        for note in snapshot.notes:
            w.show_message(note, 8000)
        if snapshot.scenes:
            w.scene_list.select_scene(snapshot.scenes[0].scene_id)
        w.projectOpened.emit(snapshot.path)

    # --- scenes ----------------------------------------------------------------------------

    def activate_scene(self, scene_id: int) -> None:
        current = self.window.workbench.current
        if self.store is None or (current is not None and current.scene_id == scene_id):
            return
        self.window.canvas.set_background(None)
        self.window.history.set_entries([])
        self.store.load_render(scene_id)
        self.store.load_history(scene_id)
        if not self.window.workbench.activate(scene_id):
            self._pending_scene = scene_id
            self.store.load_scene(scene_id)

    def _scene_loaded(self, scene: SceneData) -> None:
        if scene.scene_id != self._pending_scene:
            return  # the user moved on to another scene meanwhile
        self._pending_scene = None
        self.window.workbench.open(scene)

    def _scene_edited(self, scene: SceneData) -> None:
        if self.store is not None:
            self.store.save_scene(scene)

    def _scenes_changed(self, scenes: tuple[SceneSummary, ...]) -> None:
        w = self.window
        current = w.workbench.current
        w.scene_list.model.set_scenes(scenes)
        w.queue_panel.scene_names = {s.scene_id: s.name for s in scenes}
        ids = {s.scene_id for s in scenes}
        w.workbench.keep_only(ids)
        if current is not None and current.scene_id in ids:
            w.scene_list.select_scene(current.scene_id)
        elif scenes:
            w.scene_list.select_scene(scenes[0].scene_id)

    def _reorder_scenes(self, scene_ids: list[int]) -> None:
        if self.store is not None:
            self.store.reorder_scenes(scene_ids)

    def add_scene(self) -> None:
        if self.store is None or self.snapshot is None:
            return
        current = self.window.workbench.current
        defaults = self.snapshot.defaults
        width, height = (current.scene.width, current.scene.height) if current else (defaults.width, defaults.height)
        self.store.add_scene(f"Scene {self.window.scene_list.model.rowCount() + 1}", width, height)

    def duplicate_scene(self) -> None:
        current = self.window.workbench.current
        if self.store is not None and current is not None:
            self.store.duplicate_scene(current.scene_id)

    def delete_scene(self, scene_id: int) -> None:
        if self.store is not None:
            self.window.workbench.close_scene(scene_id)
            self.store.delete_scene(scene_id)

    # --- rendering -------------------------------------------------------------------------

    def render_current(self) -> None:
        if self.window.editor is not None:
            self.queue([self.window.editor.scene_id])

    def render_selected(self) -> None:
        ids = self.window.scene_list.selected_scene_ids()
        self.queue(ids or ([self.window.editor.scene_id] if self.window.editor else []))

    def render_all(self) -> None:
        self.queue([s.scene_id for s in self.window.scene_list.model.scenes])

    def render_variations(self, count: int | None = None) -> None:
        if self.window.editor is None:
            return
        if count is None:
            count, ok = QInputDialog.getInt(self.window, "Variations", "Renders with new seeds:", 4, 1, 100)
            if not ok:
                return
        self.queue([self.window.editor.scene_id], variations=count)

    def render_sweep(self, values: tuple[list[int], list[float], list[float]] | None = None) -> None:
        editor, store, defaults = self.window.editor, self.store, self.defaults
        if editor is None or store is None or defaults is None:
            return
        until_placed = 0
        if values is None:
            effective = editor.scene.settings.effective(defaults)
            option = self.window.commands.until_placed.for_dialog("sweepUntilPlaced")  # remembered apart
            dialog = SweepDialog(editor.scene.seed, effective.alpha, effective.mis, self.window, option)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            values, until_placed = dialog.values(), option.seeds()
        store.queue_sweep(editor.scene_id, *values, until_placed=until_placed)

    # --- renders and the queue -------------------------------------------------------------

    def queue(self, scene_ids: list[int], variations: int = 0) -> None:
        if self.store is not None and scene_ids:
            self.store.queue_scenes(scene_ids, variations, self.window.commands.until_placed.seeds())

    def _queue_refused(self, scene_id: int, problems: list[str]) -> None:
        """Render did nothing: say why under the Render button and in the status bar (the scene was saved)."""
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        if not self._is_current(scene_id):
            names = {s.scene_id: s.name for s in self.window.scene_list.model.scenes}
            shown = f"scene {names.get(scene_id, scene_id)!r}: {shown}"
        text = f"Not queued: {shown}"
        commands = self.window.commands
        show_notice(self.window, commands.toolbar, commands.render, text)
        self.window.show_message(text, 12000)

    def _jobs_queued(self, count: int) -> None:
        hide_notice(self.window)  # a "Not queued" note from before is out of date
        self.window.show_message(f"Queued {count} render(s)")
        self.window.queue.wake()

    def _render_loaded(self, scene_id: int, png: bytes | None) -> None:
        if self._is_current(scene_id):
            self.window.history_control.show_latest(png)

    def _history_loaded(self, scene_id: int, entries: list[HistoryEntry]) -> None:
        if self._is_current(scene_id):
            self.window.history.set_entries(entries)

    def _thresholds_changed(self) -> None:
        """Renders are judged by new thresholds: the history's badges (and the outlines) again."""
        current = self.window.workbench.current
        if self.store is not None and current is not None:
            self.store.load_history(current.scene_id)
        self.window.show_message("Placement thresholds saved: every render is judged by them now")

    def _render_finished(self, scene_id: int) -> None:
        if self.store is not None and self._is_current(scene_id):
            self.store.load_render(scene_id)
            self.store.load_history(scene_id)

    def _imported(self, count: int, warnings: list[str]) -> None:
        text = f"Imported {count} scene(s)"
        if warnings:
            text += f" with {len(warnings)} warning(s): " + "; ".join(warnings[:3])
        self.window.show_message(text, 15000)

    def _is_current(self, scene_id: int) -> bool:
        """The scene on the canvas, or the one on its way there (its render may arrive first)."""
        current = self.window.workbench.current
        return scene_id == self._pending_scene or (current is not None and current.scene_id == scene_id)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
