"""One scene being edited: plain data plus signals, and the only place edits are applied.

Views never change a scene themselves: they call the scene's editor (`desktop.editor.scene_editor`), which
pushes undo commands (`desktop.editor.commands`) whose redo and undo call the `apply_*` methods here.
Every applied edit emits `edited` with the whole new scene, which the window hands to the store to save.
A live drag uses `preview_instance`, which redraws without saving or recording; its release pushes one
command, so a drag is one undo step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from projects.scene_data import InstanceData, SceneData


class SceneDocument(QObject):
    instancesChanged = Signal()  # added, removed or reordered
    instanceChanged = Signal(int)  # one instance's caption, geometry or lock (its uid)
    settingsChanged = Signal()  # the scene's own fields (caption, size, seed, settings, ...)
    selectionChanged = Signal()
    edited = Signal(object)  # SceneData after any recorded edit: save it

    def __init__(self, scene: SceneData, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._scene = scene
        self._selection: tuple[int, ...] = ()

    # --- reading ---------------------------------------------------------------------------

    @property
    def scene(self) -> SceneData:
        return self._scene

    @property
    def selection(self) -> tuple[int, ...]:
        """Selected instance uids, in slot order."""
        return self._selection

    def selected(self) -> list[InstanceData]:
        return [inst for inst in self._scene.instances if inst.uid in self._selection]

    # --- selecting and previewing (not edits) ----------------------------------------------

    def set_selection(self, uids: Iterable[int]) -> None:
        wanted = set(uids)
        ordered = tuple(inst.uid for inst in self._scene.instances if inst.uid in wanted)
        if ordered != self._selection:
            self._selection = ordered
            self.selectionChanged.emit()

    def preview_instance(self, instance: InstanceData) -> None:
        """Show an in-progress change (a drag) without saving it or making it undoable."""
        self._scene = replace(self._scene, instances=_replaced(self._scene.instances, instance))
        self.instanceChanged.emit(instance.uid)

    # --- edits (called by undo commands) ---------------------------------------------------

    def apply_instance(self, instance: InstanceData) -> None:
        self.preview_instance(instance)
        self._edited()

    def apply_instances(self, instances: tuple[InstanceData, ...], selection: Iterable[int] | None = None) -> None:
        """Replace the whole instance list (add, remove, reorder) in one edit."""
        self._scene = replace(self._scene, instances=instances)
        present = {inst.uid for inst in instances}
        keep = self._selection if selection is None else tuple(selection)
        self._selection = tuple(inst.uid for inst in instances if inst.uid in keep and inst.uid in present)
        self.instancesChanged.emit()
        self.selectionChanged.emit()
        self._edited()

    def apply_fields(self, fields: Mapping[str, Any]) -> None:
        """Set scene fields (caption, negative_prompt, width, height, seed, settings, name)."""
        self._scene = replace(self._scene, **fields)
        self.settingsChanged.emit()
        self._edited()

    def _edited(self) -> None:
        self.edited.emit(self._scene)


def _replaced(instances: tuple[InstanceData, ...], new: InstanceData) -> tuple[InstanceData, ...]:
    return tuple(new if inst.uid == new.uid else inst for inst in instances)
