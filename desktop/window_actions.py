"""The window's actions, menus and tool bar: what each command is called, its key and its icon.

Built once per window from the window's slots; nothing here decides what a command does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QSpinBox, QToolBar

from desktop.canvas.tools import TOOLS, Tool
from desktop.icons import icon
from desktop.render_target import choose_render_target, load_render_target
from desktop.until_placed import UntilPlacedOption
from rendering.live_preview import MAX_PREVIEW_STEPS

if TYPE_CHECKING:
    from desktop.main_window import MainWindow

Shortcut = str | QKeySequence.StandardKey | None


class WindowActions:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        w, canvas = window, window.canvas
        undo_group = window.workbench.undo_group
        self.undo = undo_group.createUndoAction(w, "Undo")
        self.undo.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo = undo_group.createRedoAction(w, "Redo")
        self.redo.setShortcut(QKeySequence.StandardKey.Redo)
        self.copy = self._action("Copy instances", w.copy_instances, QKeySequence.StandardKey.Copy)
        self.paste = self._action("Paste instances", w.paste_instances, QKeySequence.StandardKey.Paste)
        self.duplicate = self._action("Duplicate instances", w.duplicate_instances, "Ctrl+D", "duplicate")
        self.delete = self._action("Delete instances", w.delete_instances, None, "delete")
        self.fit = self._action("Fit to window", canvas.fit, "F", "zoom-fit")
        self.zoom_in = self._action("Zoom in", lambda: canvas.zoom(1.25), QKeySequence.StandardKey.ZoomIn, "zoom-in")
        self.zoom_out = self._action(
            "Zoom out", lambda: canvas.zoom(0.8), QKeySequence.StandardKey.ZoomOut, "zoom-out"
        )
        self.render = self._action("Render", w.session.render_current, "Ctrl+Return", "render")
        self.render_selected = self._action("Render selected scenes", w.session.render_selected, None, "render-all")
        self.render_all = self._action("Render all scenes", w.session.render_all, "Ctrl+Shift+Return", "render-all")
        self.variations = self._action("Render variations…", w.session.render_variations, None, "variations")
        self.sweep = self._action("Sweep seed × alpha × mis…", w.session.render_sweep, None, "variations")
        self.placement = self._action("Placement check…", w.history_control.edit_thresholds)
        self.placement.setToolTip("When an instance counts as placed: the overlap and label score thresholds")
        w.queue.set_render_target(load_render_target(w.settings))
        self.render_on = self._action(
            "Render on…",
            lambda: choose_render_target(w, w.settings, w.queue.render_target, w.queue.set_render_target),
        )
        self.render_on.setToolTip("Render the queue on this machine or on a Ray cluster")
        self.until_placed = UntilPlacedOption(w.settings)
        self.until_placed.watch(w.workbench, lambda: w.session.defaults, w.model_settings_path)
        self.new_scene = self._action("New scene", w.add_scene, "Ctrl+Shift+N", "add-scene")
        self.duplicate_scene = self._action("Duplicate scene", w.duplicate_scene, None, "duplicate")
        self.delete_scene = self._action("Delete scene", w.delete_scene, None, "delete")
        self.new_seed = self._action("New seed", w.scene_settings.new_seed, "Ctrl+R", "dice")
        self.new_project = self._action("New project…", w.new_project, QKeySequence.StandardKey.New, "new-project")
        self.open_project = self._action(
            "Open project…", w.open_project_dialog, QKeySequence.StandardKey.Open, "open-project"
        )
        self.open_sample = self._action("Open the sample project", w.open_sample, None, "sample-project")
        self.import_files = self._action("Import…", w.import_dialog, "Ctrl+I", "import")
        self.import_files.setToolTip(
            "Import official scene JSON, COCO or labelme annotations, or images exported by Instance Studio "
            "(Ctrl+I; or drop the files on the window)"
        )
        self.export = self._action("Export…", w.export_dialog, "Ctrl+E", "export")
        self.close_project = self._action("Close project", w.close_project, QKeySequence.StandardKey.Close)
        self.model_files = self._action("Model files…", w.open_model_settings, None, "settings")
        # After the dialog (modal) closed: a checker folder may have been chosen.
        self.model_files.triggered.connect(lambda _checked=False: self.until_placed.recheck())
        self.quit = self._action("Quit", w.close, QKeySequence.StandardKey.Quit)
        if self.quit.shortcut().isEmpty():  # platforms without a standard Quit key (Windows) get Ctrl+Q
            self.quit.setShortcut(QKeySequence("Ctrl+Q"))
        self.shortcuts = self._action("Keyboard shortcuts", w.show_shortcuts, QKeySequence.StandardKey.HelpContents)

        self.tools: dict[Tool, QAction] = {}
        group = QActionGroup(w)
        for info in TOOLS:
            act = QAction(icon(info.tool.value), info.label, w)
            act.setCheckable(True)
            act.setShortcut(QKeySequence(info.shortcut))
            # One-letter keys pick tools only while the canvas has the focus: typed elsewhere (a caption, the
            # scene list) a letter is just a letter.
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            canvas.addAction(act)
            act.setToolTip(f"{info.label} ({info.shortcut}): {info.help}")
            act.setData(info.tool.value)
            act.triggered.connect(lambda _c=False, tool=info.tool: canvas.set_tool(tool))
            group.addAction(act)
            self.tools[info.tool] = act
        self.tools[Tool.SELECT].setChecked(True)
        canvas.toolChanged.connect(lambda name: self.tools[Tool(name)].setChecked(True))

        self.brush_radius = QSpinBox()
        self.brush_radius.setRange(1, 200)
        self.brush_radius.setValue(canvas.brush_radius)
        self.brush_radius.setSuffix(" px")
        self.brush_radius.setToolTip("Brush and eraser radius ([ and ])")
        self.brush_radius.valueChanged.connect(canvas.set_brush_radius)
        canvas.brushRadiusChanged.connect(self.brush_radius.setValue)
        self._build_live()

        # Enabled only while a project is open.
        self.editing = [
            self.copy,
            self.paste,
            self.duplicate,
            self.delete,
            self.new_scene,
            self.new_seed,
            self.render,
            self.render_selected,
            self.render_all,
            self.variations,
            self.sweep,
            self.placement,
            self.import_files,
            self.export,
            self.live,
            *self.tools.values(),
        ]
        self.toolbar = self._build_toolbar()
        self._build_menus()
        self.refresh_icons()

    def _build_live(self) -> None:
        """The Live switch (remembered), its preview steps per model, and Keep this."""
        w, live = self.window, self.window.live
        self.live = QAction("Live preview", w, checkable=True)
        self.live.setIconText("Live")
        self.live.setToolTip(
            "Live preview: while on, every edit (a drag, a resize, a caption typed) renders the scene again in the "
            "background with fewer steps and shows it under the instances. Queued renders always go first; a "
            "preview is never saved unless you press Keep this."
        )
        self.live.setChecked(live.remembered())
        self.live.toggled.connect(live.set_enabled)
        live.set_enabled(self.live.isChecked())
        self.live_steps = QSpinBox()
        self.live_steps.setRange(1, MAX_PREVIEW_STEPS)
        self.live_steps.setValue(live.steps())
        self.live_steps.setSuffix(" steps")
        self.live_steps.setToolTip("Steps of a live preview, for this scene's model (fewer: faster, rougher)")
        self.live_steps.valueChanged.connect(live.set_steps)
        live.stepsChanged.connect(self.live_steps.setValue)
        self.keep = self._action("Keep this", w.session.render_current)
        self.keep.setToolTip("Queue the scene as it is now as a normal render at full quality")
        self.keep.setEnabled(False)  # while a preview is shown
        w.canvas.previewShown.connect(self.keep.setEnabled)

    def _action(
        self, text: str, slot: Callable[[], object], shortcut: Shortcut = None, name: str | None = None
    ) -> QAction:
        act = QAction(text, self.window)
        if name:
            act.setData(name)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
            native = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            act.setToolTip(f"{text.replace('…', '')} ({native})")
        act.triggered.connect(lambda _checked=False: slot())
        return act

    def _build_toolbar(self) -> QToolBar:
        tools = QToolBar("Tools")
        tools.setObjectName("toolbar-tools")
        tools.setMovable(False)
        for act in self.tools.values():
            tools.addAction(act)
        tools.addWidget(self.brush_radius)
        tools.addSeparator()
        _add_all(tools, [self.undo, self.redo, None, self.zoom_out, self.zoom_in, self.fit, None, self.render])
        tools.addWidget(self.until_placed)
        tools.addSeparator()
        tools.addAction(self.live)
        tools.addWidget(self.live_steps)
        tools.addAction(self.keep)
        self.window.addToolBar(tools)
        return tools

    def _build_menus(self) -> None:
        w = self.window
        menu = w.menuBar()
        file_menu = menu.addMenu("&File")
        for act in (self.new_project, self.open_project, self.open_sample):
            file_menu.addAction(act)
        self.recent_menu = file_menu.addMenu("Recent projects")
        self.recent_menu.aboutToShow.connect(w.fill_recent_menu)
        _add_all(
            file_menu, [self.import_files, self.export, self.close_project, None, self.model_files, None, self.quit]
        )
        edit_menu = menu.addMenu("&Edit")
        _add_all(edit_menu, [self.undo, self.redo, None, self.copy, self.paste, self.duplicate, self.delete])
        scene_menu = menu.addMenu("&Scene")
        _add_all(scene_menu, [self.new_scene, self.duplicate_scene, self.delete_scene, None, self.new_seed])
        render_menu = menu.addMenu("&Render")
        for act in (self.render, self.render_selected, self.render_all, self.variations, self.sweep):
            render_menu.addAction(act)
        _add_all(render_menu, [None, self.placement, self.render_on])
        view_menu = menu.addMenu("&View")
        for act in (self.zoom_in, self.zoom_out, self.fit):
            view_menu.addAction(act)
        view_menu.addSeparator()
        for dock in w.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        self.caption_colors = QAction("Outline in the caption's colour", w, checkable=True)
        self.caption_colors.setToolTip(
            "“a blue circle” is outlined in blue; captions without a colour keep their slot colour"
        )
        self.caption_colors.setChecked(w.settings.value("captionColours", True, type=bool) is True)
        self.caption_colors.toggled.connect(self._caption_colors_toggled)
        self._caption_colors_toggled(self.caption_colors.isChecked())
        view_menu.addAction(self.caption_colors)
        view_menu.addSeparator()
        _add_all(view_menu, [self.live, self.keep, None])
        theme_group = QActionGroup(w)
        for name in ("dark", "light"):
            act = QAction(f"{name.title()} theme", w, checkable=True)
            act.setChecked(name == w.settings.value("theme", "dark"))
            act.triggered.connect(lambda _c=False, n=name: w.set_theme(n))
            theme_group.addAction(act)
            view_menu.addAction(act)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.shortcuts)

    def _caption_colors_toggled(self, on: bool) -> None:
        self.window.canvas.set_caption_colors(on)
        self.window.settings.setValue("captionColours", on)

    def set_editing_enabled(self, enabled: bool) -> None:
        for act in self.editing:
            act.setEnabled(enabled)
        self.toolbar.setVisible(enabled)

    def refresh_icons(self) -> None:
        """Every action's icon in the current theme (each action names its icon in its data)."""
        for act, name in ((self.undo, "undo"), (self.redo, "redo")):
            act.setData(name)
        for act in self.window.findChildren(QAction):
            name = act.data()
            if isinstance(name, str) and name:
                act.setIcon(icon(name))


def _add_all(to: QMenu | QToolBar, actions: list[QAction | None]) -> None:
    """Add `actions` in order; None is a separator."""
    for act in actions:
        if act is None:
            to.addSeparator()
        else:
            to.addAction(act)
