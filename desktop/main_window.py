"""The main window: the welcome page, or a project with its scene list, canvas, instances and settings.

The window wires the parts together: the store (the project file, on its own thread), the document (the
scene being edited), one undo stack per scene, the canvas and the panels. It never waits on the disk.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
    QUndoGroup,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSpinBox,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop.canvas.tools import TOOLS, Tool
from desktop.canvas.view import CanvasView
from desktop.clipboard import MIME as CLIPBOARD_MIME
from desktop.clipboard import instances_from_mime, instances_to_mime
from desktop.commands import SceneFieldsCommand, SetInstancesCommand
from desktop.compare import CompareDialog
from desktop.document import SceneDocument
from desktop.icons import app_icon, icon
from desktop.panels.history import HistoryStrip
from desktop.panels.instance_list import InstanceListPanel
from desktop.panels.queue_panel import QueuePanel
from desktop.panels.scene_list import SceneListPanel
from desktop.panels.scene_settings import SceneSettingsPanel
from desktop.preflight import TokenCounter, preflight
from desktop.render_thread import RenderThread
from desktop.scene_data import HistoryEntry, InstanceData, ProjectSnapshot, SceneData, SceneSummary
from desktop.store import ProjectStore
from desktop.sweep import ContactSheetDialog, SweepDialog, contact_sheet
from desktop.theme import apply_theme
from desktop.welcome import WelcomePage, recent_projects, remember_project
from projects.database import PROJECT_SUFFIX, Project
from projects.queue import JobSnapshot, cancel, clear_finished, move_to_front, reorder, retry

if TYPE_CHECKING:  # these import torch, which only the render thread loads
    from desktop.render_loop import JobResult
    from engine.runner import LoadedModel

log = logging.getLogger(__name__)

APP_NAME = "Instance Studio"
SAMPLE_PROJECT = Path(__file__).resolve().parent.parent / "resources" / "samples" / "shapes.instproj"
CLIP_TOKENIZER = Path(__file__).resolve().parent.parent / "resources" / "sd15" / "tokenizer"
DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "resources" / "demo" / "model"


class MainWindow(QMainWindow):
    projectOpened = Signal(str)
    renderImageLoaded = Signal(int, object)  # render id, PNG bytes (from the store's thread)

    def __init__(self, settings: QSettings, data_dir: Path, model_settings_path: Path | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.data_dir = data_dir
        self.model_settings_path = model_settings_path or data_dir / "models.json"
        # As for `main.py render`: a demo model you trained yourself can stand in for the bundled one.
        self.demo_model_dir = Path(os.environ.get("INSTANCE_STUDIO_DEMO_MODEL") or DEMO_MODEL_DIR)
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.resize(1400, 880)
        self.setAcceptDrops(True)  # scene files and exported images dropped on the window are imported
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        self.store: ProjectStore | None = None
        self.snapshot: ProjectSnapshot | None = None
        self.document = SceneDocument(self)
        self.undo_group = QUndoGroup(self)
        self._stacks: dict[int, QUndoStack] = {}
        self._scenes: dict[int, SceneData] = {}  # scenes edited this session: their uids stay valid for undo
        self._pending_scene: int | None = None
        self._count_tokens: TokenCounter | None = None
        self.render_thread: RenderThread | None = None
        self._images: dict[int, bytes] = {}  # full renders loaded for the history and compare
        self._image_waiters: list[tuple[set[int], Callable[[], None]]] = []
        self.renderImageLoaded.connect(self._render_image_loaded)

        self.welcome = WelcomePage(settings)
        self.welcome.newRequested.connect(self.new_project)
        self.welcome.openRequested.connect(self.open_project_dialog)
        self.welcome.sampleRequested.connect(self.open_sample)
        self.welcome.recentRequested.connect(lambda p: self.open_project(Path(p)))

        self.canvas = CanvasView(self.document, lambda: self.undo_group.activeStack())
        self.canvas.message.connect(self.show_message)
        self.warnings = QLabel()
        self.warnings.setObjectName("preflightWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setVisible(False)
        self.warnings.setStyleSheet(
            "QLabel#preflightWarnings { background: #4a3b12; color: #ffd98a; padding: 6px 10px; border-radius: 4px; }"
        )
        self.history = HistoryStrip()
        self.history.showRequested.connect(self.show_render)
        self.history.restoreRequested.connect(self.restore_layout)
        self.history.compareRequested.connect(self.compare_renders)
        self.history.sheetRequested.connect(self.show_contact_sheet)
        editor = QWidget()
        column = QVBoxLayout(editor)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(4)
        column.addWidget(self.warnings)
        column.addWidget(self.canvas, 1)
        column.addWidget(self.history)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(editor)
        self.setCentralWidget(self.pages)

        self.scene_list = SceneListPanel(self.add_scene, self.duplicate_scene, self.delete_scene)
        self.scene_list.sceneActivated.connect(self.activate_scene)
        self.scene_list.model.reorderRequested.connect(self._reorder_scenes)
        self.instance_list = InstanceListPanel(self.document, self.canvas.push, self.canvas.delete_selected)
        self.scene_settings = SceneSettingsPanel(self.document, self.canvas.push)
        self.queue_panel = QueuePanel()
        self.queue_panel.cancelRequested.connect(self.cancel_job)
        self.queue_panel.retryRequested.connect(lambda job_id: self._job_action(lambda s: retry(s, job_id)))
        self.queue_panel.moveRequested.connect(self._move_job)
        self.queue_panel.frontRequested.connect(lambda job_id: self._job_action(lambda s: move_to_front(s, job_id)))
        self.queue_panel.clearRequested.connect(lambda: self._job_action(clear_finished))
        self.queue_panel.pauseToggled.connect(self.set_queue_paused)
        self.docks = {
            "scenes": self._dock("Scenes", self.scene_list, Qt.DockWidgetArea.LeftDockWidgetArea),
            "instances": self._dock("Instances", self.instance_list, Qt.DockWidgetArea.RightDockWidgetArea),
            "settings": self._dock("Scene settings", self.scene_settings, Qt.DockWidgetArea.RightDockWidgetArea),
            "queue": self._dock("Queue", self.queue_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self._build_actions()
        self._preflight_timer = QTimer(self, singleShot=True, interval=150)
        self._preflight_timer.timeout.connect(self._update_preflight)
        for signal in (
            self.document.sceneReplaced,
            self.document.instancesChanged,
            self.document.instanceChanged,
            self.document.settingsChanged,
        ):
            signal.connect(self._preflight_timer.start)
        self.document.edited.connect(self._scene_edited)
        self._show_welcome()
        self._restore_layout()
        self._load_tokenizer()

    # --- layout ----------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_actions(self) -> None:
        def action(
            text: str,
            slot: Callable[[], object],
            shortcut: str | QKeySequence.StandardKey | None = None,
            icon_name: str | None = None,
        ) -> QAction:
            act = QAction(text, self)
            if icon_name:
                act.setIcon(icon(icon_name))
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
                act.setToolTip(
                    f"{text.replace('…', '')} ({act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                )
            act.triggered.connect(lambda _checked=False: slot())
            return act

        self.undo_action = self.undo_group.createUndoAction(self, "Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.undo_action.setIcon(icon("undo"))
        self.redo_action = self.undo_group.createRedoAction(self, "Redo")
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        self.redo_action.setIcon(icon("redo"))
        self.copy_action = action("Copy instances", self.copy_instances, QKeySequence.StandardKey.Copy)
        self.paste_action = action("Paste instances", self.paste_instances, QKeySequence.StandardKey.Paste)
        self.duplicate_action = action("Duplicate instances", self.canvas.duplicate_selected, "Ctrl+D", "duplicate")
        self.delete_action = action("Delete instances", self.canvas.delete_selected, None, "delete")
        self.fit_action = action("Fit to window", self.canvas.fit, "F", "zoom-fit")
        self.zoom_in_action = action(
            "Zoom in", lambda: self.canvas.zoom(1.25), QKeySequence.StandardKey.ZoomIn, "zoom-in"
        )
        self.zoom_out_action = action(
            "Zoom out", lambda: self.canvas.zoom(0.8), QKeySequence.StandardKey.ZoomOut, "zoom-out"
        )
        self.render_action = action("Render", self.render_current, "Ctrl+Return", "render")
        self.render_selected_action = action("Render selected scenes", self.render_selected, None, "render-all")
        self.render_all_action = action("Render all scenes", self.render_all, "Ctrl+Shift+Return", "render-all")
        self.variations_action = action("Render variations…", self.render_variations, None, "variations")
        self.sweep_action = action("Sweep seed × alpha × mis…", self.render_sweep, None, "variations")
        self.new_scene_action = action("New scene", self.add_scene, "Ctrl+Shift+N", "add-scene")
        self.new_seed_action = action("New seed", self.scene_settings.new_seed, "Ctrl+R", "dice")

        self.tool_actions: dict[Tool, QAction] = {}
        group = QActionGroup(self)
        for info in TOOLS:
            act = QAction(icon(info.tool.value), info.label, self)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(info.shortcut))
            act.setToolTip(f"{info.label} ({info.shortcut}): {info.help}")
            act.setData(info.tool.value)
            act.triggered.connect(lambda _c=False, tool=info.tool: self.canvas.set_tool(tool))
            group.addAction(act)
            self.tool_actions[info.tool] = act
        self.tool_actions[Tool.SELECT].setChecked(True)
        self.canvas.toolChanged.connect(lambda name: self.tool_actions[Tool(name)].setChecked(True))

        self.brush_radius = QSpinBox()
        self.brush_radius.setRange(1, 200)
        self.brush_radius.setValue(self.canvas.brush_radius)
        self.brush_radius.setSuffix(" px")
        self.brush_radius.setToolTip("Brush and eraser radius ([ and ])")
        self.brush_radius.valueChanged.connect(self.canvas.set_brush_radius)
        self.canvas.brushRadiusChanged.connect(self.brush_radius.setValue)

        tools = QToolBar("Tools")
        tools.setObjectName("toolbar-tools")
        tools.setMovable(False)
        for act in self.tool_actions.values():
            tools.addAction(act)
        tools.addWidget(self.brush_radius)
        tools.addSeparator()
        for act in (self.undo_action, self.redo_action):
            tools.addAction(act)
        tools.addSeparator()
        for act in (self.zoom_out_action, self.zoom_in_action, self.fit_action):
            tools.addAction(act)
        tools.addSeparator()
        tools.addAction(self.render_action)
        self.addToolBar(tools)
        self.tools_toolbar = tools

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addAction(action("New project…", self.new_project, QKeySequence.StandardKey.New, "new-project"))
        file_menu.addAction(
            action("Open project…", self.open_project_dialog, QKeySequence.StandardKey.Open, "open-project")
        )
        file_menu.addAction(action("Open the sample project", self.open_sample, None, "sample-project"))
        self.recent_menu = file_menu.addMenu("Recent projects")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.import_action = action("Import…", self.import_dialog, "Ctrl+I", "import")
        self.import_action.setToolTip(
            "Import official scene JSON, COCO or labelme annotations, or images exported by Instance Studio "
            "(Ctrl+I; or drop the files on the window)"
        )
        self.export_action = action("Export…", self.export_dialog, "Ctrl+E", "export")
        file_menu.addAction(self.import_action)
        file_menu.addAction(self.export_action)
        file_menu.addAction(action("Close project", self.close_project, QKeySequence.StandardKey.Close))
        file_menu.addSeparator()
        file_menu.addAction(action("Model files…", self.open_model_settings, None, "settings"))
        file_menu.addSeparator()
        file_menu.addAction(action("Quit", self.close, QKeySequence.StandardKey.Quit))
        edit_menu = menu.addMenu("&Edit")
        for act in (self.undo_action, self.redo_action):
            edit_menu.addAction(act)
        edit_menu.addSeparator()
        for act in (self.copy_action, self.paste_action, self.duplicate_action, self.delete_action):
            edit_menu.addAction(act)
        scene_menu = menu.addMenu("&Scene")
        scene_menu.addAction(self.new_scene_action)
        scene_menu.addAction(action("Duplicate scene", self.duplicate_scene, None, "duplicate"))
        scene_menu.addAction(action("Delete scene", self.delete_scene, None, "delete"))
        scene_menu.addSeparator()
        scene_menu.addAction(self.new_seed_action)
        render_menu = menu.addMenu("&Render")
        for act in (
            self.render_action,
            self.render_selected_action,
            self.render_all_action,
            self.variations_action,
            self.sweep_action,
        ):
            render_menu.addAction(act)
        view_menu = menu.addMenu("&View")
        for act in (self.zoom_in_action, self.zoom_out_action, self.fit_action):
            view_menu.addAction(act)
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        theme_group = QActionGroup(self)
        for name in ("dark", "light"):
            act = QAction(f"{name.title()} theme", self, checkable=True)
            act.setChecked(name == self.settings.value("theme", "dark"))
            act.triggered.connect(lambda _c=False, n=name: self.set_theme(n))
            theme_group.addAction(act)
            view_menu.addAction(act)
        self.editing_actions = [
            self.copy_action,
            self.paste_action,
            self.duplicate_action,
            self.delete_action,
            self.new_scene_action,
            self.new_seed_action,
            self.render_action,
            self.render_selected_action,
            self.render_all_action,
            self.variations_action,
            self.sweep_action,
            self.import_action,
            self.export_action,
            *self.tool_actions.values(),
        ]

    def _show_welcome(self) -> None:
        self.welcome.refresh()
        self.pages.setCurrentIndex(0)
        for dock in self.docks.values():
            dock.hide()
        self.tools_toolbar.hide()
        for act in self.editing_actions:
            act.setEnabled(False)

    def _show_editor(self) -> None:
        self.pages.setCurrentIndex(1)
        state = self.settings.value("windowState")
        for dock in self.docks.values():
            dock.show()
        if isinstance(state, QByteArray):
            self.restoreState(state)
        self.tools_toolbar.show()
        for act in self.editing_actions:
            act.setEnabled(True)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("windowGeometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self.settings.value("windowState")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def set_theme(self, name: str) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, name)  # type: ignore[arg-type]
            self.settings.setValue("theme", name)
            self._refresh_icons()

    def _refresh_icons(self) -> None:
        for act in self.findChildren(QAction):
            name = act.data() if isinstance(act.data(), str) else None
            if name:
                act.setIcon(icon(name))
        for act, name in (
            (self.undo_action, "undo"),
            (self.redo_action, "redo"),
            (self.fit_action, "zoom-fit"),
            (self.zoom_in_action, "zoom-in"),
            (self.zoom_out_action, "zoom-out"),
            (self.render_action, "render"),
        ):
            act.setIcon(icon(name))

    # --- projects --------------------------------------------------------------------------

    def new_project(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "New project", str(Path.home()), f"Projects (*{PROJECT_SUFFIX})")
        if not name:
            return
        path = Path(name)
        if path.suffix != PROJECT_SUFFIX:
            path = path.with_suffix(PROJECT_SUFFIX)
        try:
            Project.create(path).close()
        except Exception as exc:
            QMessageBox.warning(self, APP_NAME, f"Could not create {path}:\n{exc}")
            return
        self.open_project(path)

    def open_project_dialog(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Open project", str(Path.home()), f"Projects (*{PROJECT_SUFFIX})")
        if name:
            self.open_project(Path(name))

    def sample_copy(self) -> Path:
        """The user's own copy of the sample project (the bundled file is never written to)."""
        copy = self.data_dir / "samples" / SAMPLE_PROJECT.name
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SAMPLE_PROJECT, copy)
        return copy

    def open_sample(self) -> None:
        try:
            self.open_project(self.sample_copy())
        except OSError as exc:
            QMessageBox.warning(self, APP_NAME, f"Could not copy the sample project:\n{exc}")

    def open_project(self, path: Path) -> None:
        self.close_project()
        store = ProjectStore(self)
        store.opened.connect(self._project_opened)
        store.openFailed.connect(lambda message: self._open_failed(path, message))
        store.sceneLoaded.connect(self._scene_loaded)
        store.scenesChanged.connect(self._scenes_changed)
        store.summaryChanged.connect(self.scene_list.model.update_scene)
        store.sceneAdded.connect(self._scene_added)
        store.renderLoaded.connect(self._render_loaded)
        store.jobsChanged.connect(self._jobs_changed)
        store.jobsQueued.connect(self._jobs_queued)
        store.historyLoaded.connect(self._history_loaded)
        store.imported.connect(self._imported)
        store.failed.connect(lambda message: self.show_message(f"Not saved: {message}", 10000))
        store.saved.connect(lambda _id: self.statusBar().showMessage("Saved", 1500))
        self.store = store
        self.statusBar().showMessage(f"Opening {path}…")
        store.open(path)

    def _open_failed(self, path: Path, message: str) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self._show_welcome()
        QMessageBox.warning(self, APP_NAME, f"Could not open {path}:\n{message}")

    def _project_opened(self, snapshot: ProjectSnapshot) -> None:
        self.snapshot = snapshot
        path = Path(snapshot.path)
        self.statusBar().clearMessage()
        remember_project(self.settings, path)
        self.setWindowTitle(f"{path.stem} — {APP_NAME}")
        self.scene_settings.set_defaults(snapshot.defaults)
        self.scene_list.model.set_scenes(snapshot.scenes)
        self.queue_panel.scene_names = {s.scene_id: s.name for s in snapshot.scenes}
        self._start_render_thread(paused=snapshot.unclean_exit)
        if snapshot.unclean_exit:
            self.queue_panel.set_paused(True, "paused after an unclean exit: resume the queue when ready")
        assert self.store is not None
        self.store.refresh_jobs()
        self._show_editor()
        for note in snapshot.notes:
            self.show_message(note, 8000)
        if snapshot.scenes:
            self.scene_list.select_scene(snapshot.scenes[0].scene_id)
        else:
            self.document.load(None)
        self.projectOpened.emit(snapshot.path)

    def close_project(self) -> None:
        if self.store is None:
            return
        if self.render_thread is not None:
            thread, self.render_thread = self.render_thread, None
            thread.shutdown()  # the running job goes back to pending within a step
            thread.deleteLater()
        store, self.store = self.store, None
        store.close()  # writes what is pending
        store.deleteLater()
        self.document.load(None)
        self.canvas.set_background(None)
        for stack in self._stacks.values():
            self.undo_group.removeStack(stack)
            stack.deleteLater()
        self._stacks.clear()
        self._scenes.clear()
        self.scene_list.model.set_scenes(())
        self.queue_panel.set_jobs([])
        self.history.set_entries([])
        self._images.clear()
        self.setWindowTitle(APP_NAME)
        self._show_welcome()

    # --- scenes ----------------------------------------------------------------------------

    def activate_scene(self, scene_id: int) -> None:
        if self.store is None:
            return
        current = self.document.scene
        if current is not None and current.scene_id == scene_id:
            return
        self.canvas.set_background(None)
        self.history.set_entries([])
        self.store.load_render(scene_id)
        self.store.load_history(scene_id)
        if scene_id in self._scenes:
            self._show_scene(self._scenes[scene_id])
        else:
            self._pending_scene = scene_id
            self.store.load_scene(scene_id)

    def _scene_loaded(self, scene: SceneData) -> None:
        if scene.scene_id != self._pending_scene:
            return  # the user moved on to another scene meanwhile
        self._pending_scene = None
        self._scenes[scene.scene_id] = scene
        self._show_scene(scene)

    def _show_scene(self, scene: SceneData) -> None:
        stack = self._stacks.get(scene.scene_id)
        if stack is None:
            stack = QUndoStack(self)
            self._stacks[scene.scene_id] = stack
            self.undo_group.addStack(stack)
        self.undo_group.setActiveStack(stack)
        self.document.load(scene)
        self.scene_list.select_scene(scene.scene_id)

    def _scene_edited(self, scene: SceneData) -> None:
        self._scenes[scene.scene_id] = scene
        if self.store is not None:
            self.store.save_scene(scene)

    def _scenes_changed(self, scenes: tuple[SceneSummary, ...]) -> None:
        current = self.document.scene
        self.scene_list.model.set_scenes(scenes)
        self.queue_panel.scene_names = {s.scene_id: s.name for s in scenes}
        ids = {s.scene_id for s in scenes}
        for gone in [sid for sid in self._scenes if sid not in ids]:
            self._scenes.pop(gone, None)
        if current is not None and current.scene_id in ids:
            self.scene_list.select_scene(current.scene_id)
        elif scenes:
            self.scene_list.select_scene(scenes[0].scene_id)
        else:
            self.document.load(None)

    def _reorder_scenes(self, scene_ids: list[int]) -> None:
        if self.store is not None:
            self.store.reorder_scenes(scene_ids)

    def _scene_added(self, scene_id: int) -> None:
        self.scene_list.select_scene(scene_id)

    def _render_loaded(self, scene_id: int, png: bytes | None) -> None:
        current = self.document.scene
        if current is None or current.scene_id != scene_id:
            return
        self.canvas.set_background(QImage.fromData(png) if png else None)

    def add_scene(self) -> None:
        if self.store is None or self.snapshot is None:
            return
        current = self.document.scene
        width, height = (
            (current.width, current.height)
            if current
            else (self.snapshot.defaults.width, self.snapshot.defaults.height)
        )
        self.store.add_scene(f"Scene {self.scene_list.model.rowCount() + 1}", width, height)

    def duplicate_scene(self) -> None:
        scene = self.document.scene
        if self.store is not None and scene is not None:
            self.store.duplicate_scene(scene.scene_id)

    def delete_scene(self, confirm: bool = True) -> None:
        scene = self.document.scene
        if self.store is None or scene is None:
            return
        if confirm:
            answer = QMessageBox.question(
                self, APP_NAME, f"Delete the scene “{scene.name}” with its renders? This cannot be undone."
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        stack = self._stacks.pop(scene.scene_id, None)
        if stack is not None:
            self.undo_group.removeStack(stack)
            stack.deleteLater()
        self._scenes.pop(scene.scene_id, None)
        self.document.load(None)
        self.store.delete_scene(scene.scene_id)

    # --- rendering -------------------------------------------------------------------------

    def _start_render_thread(self, paused: bool) -> None:
        assert self.store is not None and self.store.project is not None
        settings_path = self.model_settings_path

        def provide(model_id: str) -> LoadedModel:
            # Runs on the render thread: torch and the models load there, never on the GUI thread.
            from engine.model_settings import ModelSettings
            from engine.providers import settings_provider

            settings = ModelSettings.load(settings_path, missing_ok=True)
            return settings_provider(settings, demo_dir=self.demo_model_dir)(model_id)

        thread = RenderThread(self.store.project, provide, paused=paused)
        thread.jobStarted.connect(self._job_started)
        thread.jobProgress.connect(self.queue_panel.job_progress)
        thread.jobPreview.connect(self.queue_panel.job_preview)
        thread.jobEnded.connect(self._job_ended)
        thread.pausedChanged.connect(self.queue_panel.set_paused)
        self.render_thread = thread
        thread.start()

    def _queue(self, scene_ids: list[int], variations: int = 0) -> None:
        if self.store is None or not scene_ids:
            return
        self.store.queue_scenes(scene_ids, variations)

    def render_current(self) -> None:
        scene = self.document.scene
        if scene is not None:
            self._queue([scene.scene_id])

    def render_selected(self) -> None:
        ids = self.scene_list.selected_scene_ids()
        self._queue(ids or ([self.document.scene.scene_id] if self.document.scene else []))

    def render_all(self) -> None:
        self._queue([s.scene_id for s in self.scene_list.model.scenes])

    def render_variations(self, count: int | None = None) -> None:
        scene = self.document.scene
        if scene is None:
            return
        if count is None:
            count, ok = QInputDialog.getInt(self, "Variations", "Renders with new seeds:", 4, 1, 100)
            if not ok:
                return
        self._queue([scene.scene_id], variations=count)

    def render_sweep(self, values: tuple[list[int], list[float], list[float]] | None = None) -> None:
        scene = self.document.scene
        if scene is None or self.store is None or self.snapshot is None:
            return
        if values is None:
            defaults = self.snapshot.defaults
            dialog = SweepDialog(
                scene.seed,
                float(scene.overrides.get("alpha", defaults.alpha)),
                float(scene.overrides.get("mis", defaults.mis)),
                self,
            )
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return
            values = dialog.values()
        self.store.queue_sweep(scene.scene_id, *values)

    def show_contact_sheet(self, entries: list[HistoryEntry]) -> None:
        if not entries or self.store is None:
            return

        def show() -> None:
            items = [(QImage.fromData(self._images[e.render_id]), e.request) for e in reversed(entries)]
            dialog = ContactSheetDialog(contact_sheet(items), self)
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.show()

        self._load_images({e.render_id for e in entries}, show)

    def _jobs_queued(self, count: int) -> None:
        self.show_message(f"Queued {count} render(s)")
        if self.render_thread is not None:
            self.render_thread.wake()

    def _jobs_changed(self, jobs: list[JobSnapshot]) -> None:
        self.queue_panel.set_jobs(jobs)

    def _job_started(self, job: JobSnapshot) -> None:
        self.queue_panel.job_started(job)
        if self.store is not None:
            self.store.refresh_jobs()
            self.store.refresh_summaries()

    def _job_ended(self, result: JobResult) -> None:
        if self.store is None:
            return
        self.store.refresh_jobs()
        self.store.refresh_summaries()
        if result.outcome.value in ("failed", "out of memory"):
            self.show_message(f"Render of job {result.job.id} failed: {result.error}", 15000)
        current = self.document.scene
        if result.outcome.value == "done" and current is not None and result.job.scene_id == current.scene_id:
            self.store.load_render(current.scene_id)
            self.store.load_history(current.scene_id)

    def cancel_job(self, job_id: int) -> None:
        """Cancel only that job: the running one stops within a step; a pending one never touches it."""
        if self.render_thread is not None and self.render_thread.cancel_running(job_id):
            return
        self._job_action(lambda session: cancel(session, job_id))

    def _move_job(self, job_id: int, delta: int) -> None:
        pending = [job.id for job in self.queue_panel.jobs if job.status.value == "pending"]
        if job_id not in pending:
            return
        index = pending.index(job_id)
        target = index + delta
        if 0 <= target < len(pending):
            pending[index], pending[target] = pending[target], pending[index]
            self._job_action(lambda session: reorder(session, pending))

    def _job_action(self, action: Callable[..., object]) -> None:
        if self.store is not None:
            self.store.job_action(action)
            if self.render_thread is not None:
                self.render_thread.wake()

    def set_queue_paused(self, paused: bool) -> None:
        if self.render_thread is not None:
            self.render_thread.set_paused(paused)

    def _history_loaded(self, scene_id: int, entries: list[HistoryEntry]) -> None:
        current = self.document.scene
        if current is not None and current.scene_id == scene_id:
            self.history.set_entries(entries)

    def _load_images(self, render_ids: set[int], then: Callable[[], None]) -> None:
        missing = {i for i in render_ids if i not in self._images}
        if not missing:
            then()
            return
        self._image_waiters.append((render_ids, then))
        assert self.store is not None
        for render_id in missing:
            self.store.load_render_image(render_id, self.renderImageLoaded.emit)

    def _render_image_loaded(self, render_id: int, png: bytes) -> None:
        self._images[render_id] = png
        ready = [(ids, then) for ids, then in self._image_waiters if ids <= set(self._images)]
        self._image_waiters = [(ids, then) for ids, then in self._image_waiters if not ids <= set(self._images)]
        for _ids, then in ready:
            then()

    def show_render(self, render_id: int) -> None:
        if self.store is not None:
            self._load_images(
                {render_id}, lambda: self.canvas.set_background(QImage.fromData(self._images[render_id]))
            )

    def compare_renders(self, before: int, after: int) -> None:
        def show() -> None:
            dialog = CompareDialog(
                QImage.fromData(self._images[before]),
                QImage.fromData(self._images[after]),
                (f"#{before}", f"#{after}"),
                self,
            )
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.show()

        if self.store is not None:
            self._load_images({before, after}, show)

    def restore_layout(self, entry: HistoryEntry) -> None:
        """Put the scene back to the layout and settings of a render, as one undoable step."""
        scene = self.document.scene
        stack = self.undo_group.activeStack()
        if scene is None or stack is None or self.snapshot is None:
            return
        request, defaults = entry.request, self.snapshot.defaults
        overrides = {k: v for k, v in scene.overrides.items() if k in ("seed_mode", "model_id")}
        for name in ("steps", "guidance", "alpha", "mis"):
            if getattr(request, name) != getattr(defaults, name):
                overrides[name] = getattr(request, name)
        if request.scheduler.value != defaults.scheduler:
            overrides["scheduler"] = request.scheduler.value
        fields = {
            "caption": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "width": request.width,
            "height": request.height,
            "seed": request.seed,
            "overrides": overrides,
        }
        instances: tuple[InstanceData, ...] = ()
        working = SceneData(scene.scene_id, scene.name)
        for spec in request.instances:
            instance = InstanceData(spec=spec, color=working.free_color())
            instances = (*instances, instance)
            working = SceneData(scene.scene_id, scene.name, instances=instances)
        stack.beginMacro("Restore layout")
        before = {name: getattr(scene, name) for name in fields}
        stack.push(SceneFieldsCommand(self.document, before, fields, "Restore settings"))
        stack.push(SetInstancesCommand(self.document, scene.instances, instances, "Restore instances"))
        stack.endMacro()
        self.show_message(f"Restored the layout of render #{entry.render_id}")

    # --- import and export -----------------------------------------------------------------

    def import_dialog(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Import scenes", str(Path.home()), "Scenes and annotations (*.json *.png);;All files (*)"
        )
        if names:
            self.import_files([Path(name) for name in names])

    def import_files(self, paths: list[Path]) -> None:
        if self.store is None:
            self.show_message("Open a project first, then drop the files on it.")
            return
        self.store.import_files(paths)

    def _imported(self, count: int, warnings: list[str]) -> None:
        text = f"Imported {count} scene(s)"
        if warnings:
            text += f" with {len(warnings)} warning(s): " + "; ".join(warnings[:3])
        self.show_message(text, 15000)

    def export_dialog(self) -> None:
        if self.store is None or self.store.project is None:
            return
        from desktop.export_dialog import ExportDialog

        scenes = self.scene_list.selected_scene_ids() or (
            [self.document.scene.scene_id] if self.document.scene else []
        )
        renders = [entry.render_id for entry in self.history.selected_entries()]
        dialog = ExportDialog(self.store.project, scenes, renders, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(_droppable(url.toLocalFile()) for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if _droppable(url.toLocalFile())]
        if paths:
            event.acceptProposedAction()
            self.import_files(paths)

    # --- clipboard -------------------------------------------------------------------------

    def copy_instances(self) -> None:
        selected = self.document.selected()
        if selected:
            QGuiApplication.clipboard().setMimeData(instances_to_mime(selected))
            self.show_message(f"Copied {len(selected)} instance(s)")

    def paste_instances(self) -> None:
        instances = instances_from_mime(QGuiApplication.clipboard().mimeData())
        if not instances:
            self.show_message("Nothing to paste: copy instances first")
            return
        self.canvas.insert_instances(instances, "Paste")

    # --- warnings, messages, settings ------------------------------------------------------

    def _update_preflight(self) -> None:
        scene = self.document.scene
        warnings = preflight(scene, self._count_tokens) if scene is not None else []
        self.warnings.setVisible(bool(warnings))
        if warnings:
            shown = "<br>".join(f"⚠ {w.message}" for w in warnings[:6])
            more = f"<br>… and {len(warnings) - 6} more" if len(warnings) > 6 else ""
            self.warnings.setText(shown + more)

    def _load_tokenizer(self) -> None:
        """CLIP's tokenizer for the 77-token check, loaded once per process off the GUI thread."""

        def ready(counter: TokenCounter) -> None:
            self._count_tokens = counter

        shared_token_counter(ready)

    def show_message(self, text: str, timeout: int = 5000) -> None:
        self.statusBar().showMessage(text, timeout)

    def open_model_settings(self) -> None:
        from desktop.model_dialog import ModelSettingsDialog

        dialog = ModelSettingsDialog(self.model_settings_path, self)
        dialog.exec()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in recent_projects(self.settings):
            act = self.recent_menu.addAction(str(path))
            act.setEnabled(path.exists())
            act.triggered.connect(lambda _c=False, p=path: self.open_project(p))

    def closeEvent(self, event: QCloseEvent) -> None:
        clipboard = QGuiApplication.clipboard()
        data = clipboard.mimeData()
        if data is not None and data.hasFormat(CLIPBOARD_MIME):
            # Qt owns the copied instances' QMimeData; left there, it is freed twice when the app exits.
            clipboard.clear()
        self.settings.setValue("windowGeometry", self.saveGeometry())
        if self.pages.currentIndex() == 1:
            self.settings.setValue("windowState", self.saveState())
        self.close_project()
        super().closeEvent(event)


_tokens_lock = threading.Lock()
_tokens_thread: threading.Thread | None = None
_token_counter: list[TokenCounter] = []


def shared_token_counter(ready: Callable[[TokenCounter], None]) -> None:
    """Hand CLIP's token counter to `ready` once it is loaded (transformers imports slowly). One loader
    thread per process, not a daemon: interpreter shutdown waits for it instead of tearing it down."""
    global _tokens_thread
    with _tokens_lock:
        if _token_counter:
            ready(_token_counter[0])
            return

        def load() -> None:
            try:
                from transformers import CLIPTokenizer

                tokenizer = CLIPTokenizer.from_pretrained(CLIP_TOKENIZER, local_files_only=True)
            except Exception as exc:  # the check is a nicety: never fail the window for it
                log.warning("no token counting: %s", exc)
                return
            counter: TokenCounter = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
            with _tokens_lock:
                _token_counter.append(counter)
                waiting = list(_waiting)
                _waiting.clear()
            for callback in waiting:
                callback(counter)

        _waiting.append(ready)
        if _tokens_thread is None:
            _tokens_thread = threading.Thread(target=load, name="tokenizer")
            _tokens_thread.start()


_waiting: list[Callable[[TokenCounter], None]] = []


def _droppable(path: str) -> bool:
    return bool(path) and Path(path).suffix.lower() in (".json", ".png")


def theme_name(settings: QSettings) -> str:
    value = settings.value("theme", "dark")
    return value if value in ("dark", "light") else "dark"
