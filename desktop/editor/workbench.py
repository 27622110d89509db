"""The open scenes of a project: one `SceneEditor` per scene opened this session, one of them current.

Editors live until the project closes (or their scene is deleted), so switching scenes keeps each
scene's undo history and its instances' uids. Their undo stacks share one `QUndoGroup`, whose actions
follow the current scene. Views follow `currentChanged`; the window saves what `edited` hands it.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoGroup

from desktop.editor.scene_editor import SceneEditor
from projects.scene_data import SceneData


class Workbench(QObject):
    currentChanged = Signal(object)  # SceneEditor | None
    edited = Signal(object)  # SceneData after any recorded edit in any open scene
    message = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_group = QUndoGroup(self)
        self._editors: dict[int, SceneEditor] = {}
        self._current: SceneEditor | None = None

    @property
    def current(self) -> SceneEditor | None:
        return self._current

    def editor(self, scene_id: int) -> SceneEditor | None:
        """The scene's editor if it was opened this session."""
        return self._editors.get(scene_id)

    def open(self, scene: SceneData) -> SceneEditor:
        """Make `scene` current, with a new editor unless it already has one (which wins: it holds the
        edits of this session, which may not have reached the file yet)."""
        editor = self._editors.get(scene.scene_id)
        if editor is None:
            editor = SceneEditor(scene, self)
            editor.document.edited.connect(self.edited)
            editor.message.connect(self.message)
            self.undo_group.addStack(editor.undo_stack)
            self._editors[scene.scene_id] = editor
        self._set_current(editor)
        return editor

    def activate(self, scene_id: int) -> bool:
        """Make an already open scene current; False when it has no editor yet (load it, then `open`)."""
        editor = self._editors.get(scene_id)
        if editor is not None:
            self._set_current(editor)
        return editor is not None

    def close_scene(self, scene_id: int) -> None:
        """Forget a scene's editor and its history (the scene was deleted)."""
        editor = self._editors.pop(scene_id, None)
        if editor is None:
            return
        if editor is self._current:
            self._set_current(None)
        self.undo_group.removeStack(editor.undo_stack)
        editor.deleteLater()

    def keep_only(self, scene_ids: set[int]) -> None:
        for scene_id in [sid for sid in self._editors if sid not in scene_ids]:
            self.close_scene(scene_id)

    def clear(self) -> None:
        for scene_id in list(self._editors):
            self.close_scene(scene_id)
        self._set_current(None)

    def _set_current(self, editor: SceneEditor | None) -> None:
        if editor is self._current:
            return
        self._current = editor
        self.undo_group.setActiveStack(editor.undo_stack if editor is not None else None)  # type: ignore[arg-type]
        self.currentChanged.emit(editor)
