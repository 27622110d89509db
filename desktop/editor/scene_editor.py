"""The editor of one open scene: its document, its undo history and every edit a user can make.

No widgets here. The canvas turns mouse and keys into calls on this object, the panels call it too, and
the tests drive it directly. Each edit becomes one undo command on the scene's own stack (a multi-instance
move or a restore is one macro), so undo is per scene and exact. Live drags go through `InstanceDrag`,
which previews without saving and records one step on release.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from desktop.editor.commands import EditInstanceCommand, SceneFieldsCommand, SetInstancesCommand
from desktop.editor.document import SceneDocument
from desktop.geometry import translate
from engine.request import MAX_INSTANCES, InstanceSpec, RenderRequest
from projects.scene_data import InstanceData, SceneData
from projects.scene_settings import SceneSettings

MAX_SEED = 2**31 - 1
DUPLICATE_OFFSET = 0.03  # a duplicate sits this far (normalised) down and right of its original


class SceneEditor(QObject):
    """Every edit of one scene, undoable. Create one per open scene; it owns its document and stack."""

    message = Signal(str)  # something to tell the user (a limit reached, a locked instance)
    captionWanted = Signal(int)  # a newly drawn instance (uid) asks for its caption

    def __init__(self, scene: SceneData, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = SceneDocument(scene, self)
        self.undo_stack = QUndoStack(self)

    # --- reading ---------------------------------------------------------------------------

    @property
    def scene(self) -> SceneData:
        return self.document.scene

    @property
    def scene_id(self) -> int:
        return self.document.scene.scene_id

    @property
    def selection(self) -> tuple[int, ...]:
        return self.document.selection

    def selected(self) -> list[InstanceData]:
        return self.document.selected()

    def set_selection(self, uids: Iterable[int]) -> None:
        self.document.set_selection(uids)

    def cycle_selection(self, backwards: bool = False) -> None:
        """Select the next instance in slot order (Tab), or the previous one."""
        uids = [inst.uid for inst in self.scene.instances]
        if not uids:
            return
        current = self.selection
        if not current:
            index = len(uids) - 1 if backwards else 0
        else:
            index = (uids.index(current[0]) + (-1 if backwards else 1)) % len(uids)
        self.set_selection([uids[index]])

    # --- adding and removing ---------------------------------------------------------------

    def add_instance(self, spec: InstanceSpec, *, ask_caption: bool = True) -> InstanceData | None:
        """Append a new instance and select it; a drawn shape then asks for its caption."""
        scene = self.scene
        if len(scene.instances) >= MAX_INSTANCES:
            self.message.emit(f"A scene holds at most {MAX_INSTANCES} instances; delete one first.")
            return None
        instance = InstanceData(spec=spec, color=scene.free_color())
        self._push(
            SetInstancesCommand(
                self.document,
                scene.instances,
                (*scene.instances, instance),
                f"Add {spec.kind.value}",
                select_after=[instance.uid],
            )
        )
        if ask_caption:
            self.captionWanted.emit(instance.uid)
        return instance

    def insert_instances(self, instances: Sequence[InstanceData], text: str = "Paste") -> list[InstanceData]:
        """Append copies (new uids and free colours) of `instances`, as far as the slot limit allows."""
        scene = self.scene
        if not instances:
            return []
        room = MAX_INSTANCES - len(scene.instances)
        if room <= 0:
            self.message.emit(f"A scene holds at most {MAX_INSTANCES} instances.")
            return []
        added: list[InstanceData] = []
        working = scene
        for inst in instances[:room]:
            new = InstanceData(spec=inst.spec, locked=inst.locked, color=working.free_color())
            added.append(new)
            working = dataclasses.replace(working, instances=(*working.instances, new))
        if len(instances) > room:
            self.message.emit(f"Only {room} of {len(instances)} fit: a scene holds at most {MAX_INSTANCES}.")
        self._push(
            SetInstancesCommand(
                self.document, scene.instances, working.instances, text, select_after=[i.uid for i in added]
            )
        )
        return added

    def duplicate_selected(self) -> list[InstanceData]:
        copies = [
            InstanceData(spec=translate(inst.spec, DUPLICATE_OFFSET, DUPLICATE_OFFSET), color=inst.color)
            for inst in self.selected()
        ]
        return self.insert_instances(copies, "Duplicate")

    def delete_selected(self) -> None:
        gone = set(self.selection)
        if not gone:
            return
        kept = tuple(inst for inst in self.scene.instances if inst.uid not in gone)
        self._push(
            SetInstancesCommand(self.document, self.scene.instances, kept, f"Delete {len(gone)} instance(s)", [])
        )

    def reorder(self, order: Sequence[InstanceData]) -> None:
        """Put the instances in a new slot order (the slot order is the model's)."""
        after = tuple(order)
        if after != self.scene.instances:
            self._push(SetInstancesCommand(self.document, self.scene.instances, after, "Reorder instances"))

    # --- changing one instance -------------------------------------------------------------

    def set_caption(self, uid: int, caption: str, *, typing: bool = False) -> None:
        before = self.scene.instance(uid)
        caption = caption.strip()
        if before is None or caption == before.caption:
            return
        after = before.with_spec(dataclasses.replace(before.spec, caption=caption))
        self._push(EditInstanceCommand(self.document, before, after, "Edit caption", typing=typing))

    def set_locked(self, uid: int, locked: bool) -> None:
        before = self.scene.instance(uid)
        if before is None or before.locked == locked:
            return
        after = dataclasses.replace(before, locked=locked)
        self._push(EditInstanceCommand(self.document, before, after, "Lock" if locked else "Unlock"))

    def replace_spec(self, uid: int, spec: InstanceSpec, text: str) -> None:
        """One instance's location replaced as one step (a repainted mask, a typed-in box)."""
        before = self.scene.instance(uid)
        if before is not None and before.spec != spec:
            self._push(EditInstanceCommand(self.document, before, before.with_spec(spec), text))

    def nudge(self, dx: float, dy: float) -> None:
        """Move the selected unlocked instances by (dx, dy) in normalised units, as one step."""
        movable = [inst for inst in self.selected() if not inst.locked]
        self.record_changes("Nudge", [(inst, inst.with_spec(translate(inst.spec, dx, dy))) for inst in movable])

    def begin_drag(self, instances: Sequence[InstanceData] | None = None) -> InstanceDrag | None:
        """Start a live drag of `instances` (default: the selected unlocked ones). None when nothing can move."""
        originals = [inst for inst in (self.selected() if instances is None else instances) if not inst.locked]
        if not originals:
            self.message.emit("This instance is locked; unlock it in the instance list to move it.")
            return None
        return InstanceDrag(self, originals)

    def begin_caption(self, uid: int) -> CaptionTyping | None:
        """Start typing an instance's caption in place: each keystroke shows, Enter keeps it as one step."""
        instance = self.scene.instance(uid)
        return None if instance is None else CaptionTyping(InstanceDrag(self, [instance]))

    # --- scene fields ----------------------------------------------------------------------

    def set_fields(self, text: str, *, typing: bool = False, **fields: Any) -> None:
        """Set scene fields (name, caption, negative_prompt, width, height, seed, settings) as one step;
        typing into one field merges into one step."""
        scene = self.scene
        if all(getattr(scene, key) == value for key, value in fields.items()):
            return
        before = {name: getattr(scene, name) for name in fields}
        self._push(SceneFieldsCommand(self.document, before, fields, text, typing=typing))

    def new_seed(self) -> None:
        self.set_fields("New seed", seed=random.randint(0, MAX_SEED))

    def restore(self, request: RenderRequest, settings: SceneSettings, text: str = "Restore layout") -> None:
        """Put the scene back to a render's layout and settings, as one undoable step."""
        scene = self.scene
        fields = {
            "caption": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "width": request.width,
            "height": request.height,
            "seed": request.seed,
            "settings": settings,
        }
        working = dataclasses.replace(scene, instances=())
        for spec in request.instances:
            working = dataclasses.replace(
                working, instances=(*working.instances, InstanceData(spec=spec, color=working.free_color()))
            )
        before = {name: getattr(scene, name) for name in fields}
        self._macro(
            text,
            [
                SceneFieldsCommand(self.document, before, fields, "Restore settings"),
                SetInstancesCommand(self.document, scene.instances, working.instances, "Restore instances"),
            ],
        )

    # --- undo ------------------------------------------------------------------------------

    def _push(self, command: QUndoCommand) -> None:
        self.undo_stack.push(command)

    def _macro(self, text: str, commands: Sequence[QUndoCommand]) -> None:
        """Several commands as one undo step (one command needs no macro)."""
        if len(commands) == 1:
            self._push(commands[0])
            return
        self.undo_stack.beginMacro(text)
        for command in commands:
            self._push(command)
        self.undo_stack.endMacro()

    def record_changes(self, text: str, changes: Sequence[tuple[InstanceData, InstanceData]]) -> None:
        """Record instance changes (before, after) as one step, skipping those that changed nothing."""
        real = [(before, after) for before, after in changes if before != after]
        self._macro(text, [EditInstanceCommand(self.document, before, after, text) for before, after in real])


class InstanceDrag:
    """A live move, resize or vertex drag: previews redraw without saving; `commit` records one step."""

    def __init__(self, editor: SceneEditor, originals: Sequence[InstanceData]) -> None:
        self.editor = editor
        self.originals = list(originals)

    def preview(self, change: Callable[[InstanceSpec], InstanceSpec]) -> None:
        """Show each dragged instance as `change` makes it from where the drag started."""
        for original in self.originals:
            self.editor.document.preview_instance(original.with_spec(change(original.spec)))

    def commit(self, text: str) -> None:
        scene = self.editor.scene
        current = [(original, scene.instance(original.uid)) for original in self.originals]
        # The document already shows the result; the commands' redo applies it again and saves it.
        self.editor.record_changes(text, [(before, after) for before, after in current if after is not None])
        self.originals = []

    def cancel(self) -> None:
        for original in self.originals:
            if self.editor.scene.instance(original.uid) is not None:
                self.editor.document.preview_instance(original)
        self.originals = []


class CaptionTyping:
    """A caption being typed in place: shown as it is typed (not saved), kept as one step, or dropped."""

    def __init__(self, drag: InstanceDrag) -> None:
        self._drag = drag

    @property
    def uid(self) -> int:
        return self._drag.originals[0].uid

    @property
    def original(self) -> str:
        return self._drag.originals[0].caption

    def preview(self, text: str) -> None:
        self._drag.preview(lambda spec: dataclasses.replace(spec, caption=text))

    def commit(self, text: str) -> None:
        self.preview(text.strip())
        self._drag.commit("Edit caption")

    def cancel(self) -> None:
        self._drag.cancel()
