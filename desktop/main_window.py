"""The main window: the welcome page, or a project with its scene list, canvas, instances and settings.

The window is wiring. The store (`desktop.store`) owns the project file on its own thread; the workbench
(`desktop.editor`) holds one editor per open scene, with its undo history; the queue control runs the
render thread; the canvas and the panels show the current scene's editor and call into it. The window
never waits on the disk.
"""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.canvas.overlay import CanvasOverlay
from desktop.canvas.view import CanvasView
from desktop.clipboard import MIME as CLIPBOARD_MIME
from desktop.clipboard import instances_from_mime, instances_to_mime
from desktop.editor.connections import Connections
from desktop.editor.scene_editor import SceneEditor
from desktop.editor.workbench import Workbench
from desktop.help import FirstRunHint, ShortcutsDialog
from desktop.history_control import HistoryControl
from desktop.icons import app_icon
from desktop.live_preview import LivePreviewControl
from desktop.panels.history import HistoryStrip
from desktop.panels.instance_list import InstanceListPanel
from desktop.panels.queue_panel import QueuePanel
from desktop.panels.scene_list import SceneListPanel
from desktop.panels.scene_settings import SceneSettingsPanel
from desktop.preflight import TokenCounter, preflight
from desktop.project_session import ProjectSession
from desktop.queue_control import QueueControl
from desktop.render_images import RenderImages
from desktop.store import ProjectStore
from desktop.theme import apply_theme
from desktop.token_counter import request_token_counter
from desktop.welcome import WelcomePage, recent_projects
from desktop.window_actions import WindowActions
from projects.database import PROJECT_SUFFIX, Project
from resources import resource_path

APP_NAME = "Instance Studio"
SHOWN_WARNINGS = 3  # the banner lies over the canvas: the first few, then a count
SAMPLE_PROJECT = resource_path("samples", "shapes.instproj")


class MainWindow(QMainWindow):
    projectOpened = Signal(str)

    def __init__(self, settings: QSettings, data_dir: Path, model_settings_path: Path | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.data_dir = data_dir
        self.model_settings_path = model_settings_path or data_dir / "models.json"
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(app_icon())
        self.resize(1400, 880)
        self.setAcceptDrops(True)  # scene files and exported images dropped on the window are imported
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)
        self._count_tokens: TokenCounter | None = None
        self._editor_links = Connections()

        self.workbench = Workbench(self)
        self.images = RenderImages(self)
        self.welcome = WelcomePage(settings)
        self.welcome.newRequested.connect(self.new_project)
        self.welcome.openRequested.connect(self.open_project_dialog)
        self.welcome.sampleRequested.connect(self.open_sample)
        self.welcome.recentRequested.connect(lambda p: self.open_project(Path(p)))

        self.canvas = CanvasView()
        self.canvas.message.connect(self.show_message)
        self.warnings = CanvasOverlay(self.canvas, object_name="preflightWarnings")
        self.warnings.setStyleSheet(
            "QLabel#preflightWarnings { background: #4a3b12; color: #ffd98a; padding: 6px 10px; border-radius: 4px; }"
            'QLabel#preflightWarnings[info="true"] { background: rgba(30, 60, 90, 220); color: #e8f1ff; }'
        )
        self.hint = FirstRunHint(self.canvas, settings)
        self.history = HistoryStrip()
        editor_page = QWidget()
        column = QVBoxLayout(editor_page)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(4)
        column.addWidget(self.canvas, 1)
        column.addWidget(self.history)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(editor_page)
        self.setCentralWidget(self.pages)

        self.scene_list = SceneListPanel(self.add_scene, self.duplicate_scene, self.delete_scene)
        self.instance_list = InstanceListPanel()
        self.scene_settings = SceneSettingsPanel()
        self.scene_settings.model_settings_path = self.model_settings_path  # its LoRA list offers those configured
        self.queue_panel = QueuePanel()
        self.queue = QueueControl(self.queue_panel, self.model_settings_path, self)
        self.queue.message.connect(self.show_message)
        self.session = ProjectSession(self)
        self.history_control = HistoryControl(self)
        self.live = LivePreviewControl(self.canvas, self.queue, settings, lambda: self.session.defaults, self)
        self.live_status = QLabel()
        self.live_status.setObjectName("liveStatus")
        self.statusBar().addPermanentWidget(self.live_status)
        self.live.statusChanged.connect(self.live_status.setText)
        self.docks = {
            "scenes": self._dock("Scenes", self.scene_list, Qt.DockWidgetArea.LeftDockWidgetArea),
            "instances": self._dock("Instances", self.instance_list, Qt.DockWidgetArea.RightDockWidgetArea),
            "settings": self._dock("Scene settings", self.scene_settings, Qt.DockWidgetArea.RightDockWidgetArea),
            "queue": self._dock("Queue", self.queue_panel, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        # The side docks run the full height; the queue sits under the canvas only.
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.commands = WindowActions(self)
        self._preflight_timer = QTimer(self, singleShot=True, interval=150)
        self._preflight_timer.timeout.connect(self._update_preflight)
        self.workbench.currentChanged.connect(self._editor_changed)
        self.workbench.message.connect(self.show_message)
        self._show_welcome()
        self._restore_layout()
        request_token_counter(self._tokens_ready)

    # --- layout ----------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower().replace(' ', '-')}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _show_welcome(self) -> None:
        self.welcome.refresh()
        self.pages.setCurrentIndex(0)
        for dock in self.docks.values():
            dock.hide()
        self.commands.set_editing_enabled(False)

    def show_editor(self) -> None:
        self.pages.setCurrentIndex(1)
        for dock in self.docks.values():
            dock.show()
        state = self.settings.value("windowState")
        if not (isinstance(state, QByteArray) and self.restoreState(state)):
            self._default_dock_sizes()
        self.commands.set_editing_enabled(True)

    def _default_dock_sizes(self) -> None:
        """Room for the instance list (several rows) beside the settings, and a queue that leaves the canvas
        most of the height."""
        height = self.height()
        self.resizeDocks([self.docks["queue"]], [max(150, height // 5)], Qt.Orientation.Vertical)
        self.resizeDocks(
            [self.docks["instances"], self.docks["settings"]], [height // 2, height // 2], Qt.Orientation.Vertical
        )
        self.resizeDocks([self.docks["scenes"], self.docks["instances"]], [240, 380], Qt.Orientation.Horizontal)

    def _restore_layout(self) -> None:
        """The window's size and place; the docks' layout is restored with the editor (the welcome page has none)."""
        geometry = self.settings.value("windowGeometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)

    def set_theme(self, name: str) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, name)  # type: ignore[arg-type]
            self.settings.setValue("theme", name)
            self.commands.refresh_icons()

    # --- the current scene -----------------------------------------------------------------

    @property
    def editor(self) -> SceneEditor | None:
        """The editor of the scene on the canvas (None on the welcome page or in an empty project)."""
        return self.workbench.current

    def _editor_changed(self, editor: SceneEditor | None) -> None:
        for view in (self.canvas, self.instance_list, self.scene_settings):
            view.set_editor(editor)
        self.hint.follow(editor)
        self.live.follow(editor)
        self._editor_links.clear()
        if editor is not None:
            document = editor.document
            for signal in (document.instancesChanged, document.instanceChanged, document.settingsChanged):
                self._editor_links.connect(signal, self._preflight_timer.start)
            self.scene_list.select_scene(editor.scene_id)
        self._preflight_timer.start()

    def _update_preflight(self) -> None:
        editor, defaults = self.editor, self.session.defaults
        warnings = []
        if editor is not None:  # the scene's model (the demo model has warnings of its own)
            model_id = editor.scene.settings.effective(defaults).model_id if defaults is not None else None
            warnings = preflight(editor.scene, self._count_tokens, model_id)
        warnings = sorted(warnings, key=lambda w: w.info)  # what is wrong first, then what is good to know
        shown = "<br>".join(f"{'ℹ' if w.info else '⚠'} {html.escape(w.message)}" for w in warnings[:SHOWN_WARNINGS])
        more = f"<br>… and {len(warnings) - SHOWN_WARNINGS} more" if len(warnings) > SHOWN_WARNINGS else ""
        self.warnings.setProperty("info", all(w.info for w in warnings))
        self.warnings.style().unpolish(self.warnings)
        self.warnings.style().polish(self.warnings)
        self.warnings.show_text(shown + more if warnings else "")

    def _tokens_ready(self, counter: TokenCounter) -> None:
        self._count_tokens = counter
        self._preflight_timer.start()

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
        self.session.open(path)

    def open_failed(self, path: Path, message: str) -> None:
        """The project open before (if any) stays open; the message says why `path` did not open."""
        if self.session.store is None:
            self._show_welcome()
        self.statusBar().clearMessage()
        QMessageBox.warning(self, APP_NAME, f"Could not open {path}:\n{message}")

    def close_project(self) -> None:
        if self.session.close():
            self.canvas.set_background(None)
            self.history.set_entries([])
            self.setWindowTitle(APP_NAME)
            self._show_welcome()

    @property
    def store(self) -> ProjectStore | None:
        return self.session.store

    # --- scenes ----------------------------------------------------------------------------

    def add_scene(self) -> None:
        self.session.add_scene()

    def duplicate_scene(self) -> None:
        self.session.duplicate_scene()

    def delete_scene(self, confirm: bool = True) -> None:
        editor = self.editor
        if editor is None:
            return
        if confirm:
            answer = QMessageBox.question(
                self, APP_NAME, f"Delete the scene “{editor.scene.name}” with its renders? This cannot be undone."
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.session.delete_scene(editor.scene_id)

    # --- editing ---------------------------------------------------------------------------

    def copy_instances(self) -> None:
        selected = self.editor.selected() if self.editor else []
        if selected:
            QGuiApplication.clipboard().setMimeData(instances_to_mime(selected))
            self.show_message(f"Copied {len(selected)} instance(s)")

    def paste_instances(self) -> None:
        instances = instances_from_mime(QGuiApplication.clipboard().mimeData())
        if not instances:
            self.show_message("Nothing to paste: copy instances first")
        elif self.editor is not None:
            self.editor.insert_instances(instances, "Paste")

    def duplicate_instances(self) -> None:
        if self.editor is not None:
            self.editor.duplicate_selected()

    def delete_instances(self) -> None:
        if self.editor is not None:
            self.editor.delete_selected()

    # --- import and export -----------------------------------------------------------------

    def import_dialog(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Import scenes", str(Path.home()), "Scenes and annotations (*.json *.png);;All files (*)"
        )
        if names:
            self.import_files([Path(name) for name in names])

    def import_files(self, paths: list[Path]) -> None:
        if self.session.store is None:
            self.show_message("Open a project first, then drop the files on it.")
            return
        self.session.store.import_files(paths)

    def export_dialog(self) -> None:
        store = self.session.store
        if store is None or store.project is None:
            return
        from desktop.export_dialog import ExportDialog

        scenes = self.scene_list.selected_scene_ids() or ([self.editor.scene_id] if self.editor else [])
        renders = [entry.render_id for entry in self.history.selected_entries()]
        ExportDialog.open_for(self, store, scenes, renders)  # modal; a second Ctrl+E brings it forward

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(_droppable(url.toLocalFile()) for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if _droppable(url.toLocalFile())]
        if paths:
            event.acceptProposedAction()
            self.import_files(paths)

    # --- messages, settings, closing -------------------------------------------------------

    def show_message(self, text: str, timeout: int = 5000) -> None:
        self.statusBar().showMessage(text, timeout)

    def show_shortcuts(self) -> None:
        dialog = ShortcutsDialog(self.findChildren(QAction), self)
        dialog.exec()
        dialog.deleteLater()

    def open_model_settings(self) -> None:
        from desktop.model_dialog import ModelSettingsDialog

        ModelSettingsDialog(self.model_settings_path, self).exec()

    def fill_recent_menu(self) -> None:
        menu = self.commands.recent_menu
        menu.clear()
        for path in recent_projects(self.settings):
            act = menu.addAction(str(path))
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


def _droppable(path: str) -> bool:
    return bool(path) and Path(path).suffix.lower() in (".json", ".png")


def theme_name(settings: QSettings) -> str:
    value = settings.value("theme", "dark")
    return value if value in ("dark", "light") else "dark"
