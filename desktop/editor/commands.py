"""Undoable edits. Each holds the values before and after, so undo and redo are exact and cheap.

Commands of one text field merge while the user types (one undo step per burst of typing), the way text
editors behave; geometry commands never merge, so each drag or nudge is its own step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from PySide6.QtGui import QUndoCommand

from desktop.editor.document import SceneDocument
from projects.scene_data import InstanceData

_MERGE_CAPTION = 1
_MERGE_FIELD = 2


class EditInstanceCommand(QUndoCommand):
    """One instance changed: moved, resized, re-captioned, locked, repainted."""

    def __init__(
        self, document: SceneDocument, before: InstanceData, after: InstanceData, text: str, *, typing: bool = False
    ) -> None:
        super().__init__(text)
        self.document = document
        self.before = before
        self.after = after
        self.typing = typing

    def redo(self) -> None:
        self.document.apply_instance(self.after)

    def undo(self) -> None:
        self.document.apply_instance(self.before)

    def id(self) -> int:
        return _MERGE_CAPTION if self.typing else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditInstanceCommand) or not other.typing or other.after.uid != self.after.uid:
            return False
        self.after = other.after
        return True


class SetInstancesCommand(QUndoCommand):
    """The instance list changed as a whole: added, deleted, reordered, pasted, duplicated."""

    def __init__(
        self,
        document: SceneDocument,
        before: tuple[InstanceData, ...],
        after: tuple[InstanceData, ...],
        text: str,
        select_after: Iterable[int] | None = None,
    ) -> None:
        super().__init__(text)
        self.document = document
        self.before = before
        self.after = after
        self.selection_before = document.selection
        self.select_after = None if select_after is None else tuple(select_after)

    def redo(self) -> None:
        self.document.apply_instances(self.after, self.select_after)

    def undo(self) -> None:
        self.document.apply_instances(self.before, self.selection_before)


class SceneFieldsCommand(QUndoCommand):
    """Scene settings changed (caption, size, seed, settings...). Typing into one field merges."""

    def __init__(
        self,
        document: SceneDocument,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        text: str,
        *,
        typing: bool = False,
    ) -> None:
        super().__init__(text)
        self.document = document
        self.before = dict(before)
        self.after = dict(after)
        self.typing = typing

    def redo(self) -> None:
        self.document.apply_fields(self.after)

    def undo(self) -> None:
        self.document.apply_fields(self.before)

    def id(self) -> int:
        return _MERGE_FIELD if self.typing else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, SceneFieldsCommand) or not other.typing or set(other.after) != set(self.after):
            return False
        self.after = other.after
        return True
