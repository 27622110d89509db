"""Reordering a list by dragging its rows: the rows travel as a small private MIME payload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from PySide6.QtCore import QByteArray, QMimeData, QModelIndex, QPersistentModelIndex, Qt

T = TypeVar("T")


def rows_mime(mime_type: str, indexes: Sequence[QModelIndex]) -> QMimeData:
    data = QMimeData()
    rows = sorted({index.row() for index in indexes})
    data.setData(mime_type, QByteArray(",".join(map(str, rows)).encode()))
    return data


def dropped_rows(data: QMimeData, mime_type: str) -> list[int] | None:
    """The dragged rows, or None for a drop from elsewhere."""
    if not data.hasFormat(mime_type):
        return None
    return sorted({int(r) for r in bytes(data.data(mime_type).data()).decode().split(",") if r.isdigit()})


def reordered(items: Sequence[T], rows: list[int], to: int) -> list[T]:
    """`items` with the ones at `rows` moved (in their order) to stand before position `to`."""
    moving = [items[r] for r in rows if 0 <= r < len(items)]
    rest = [item for r, item in enumerate(items) if r not in rows]
    at = to - sum(1 for r in rows if r < to)
    return [*rest[:at], *moving, *rest[at:]]


class DragToReorder:
    """Mixin for a flat item model whose rows the user reorders by dragging; put it before the Qt base.

    The model names its payload in `drag_mime` and does the move in `move_rows`; a drop below the last
    row appends."""

    drag_mime: str

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [self.drag_mime]

    def mimeData(self, indexes: Sequence[QModelIndex], /) -> QMimeData:
        return rows_mime(self.drag_mime, indexes)

    def dropMimeData(
        self,
        data: QMimeData,
        action: Qt.DropAction,
        row: int,
        column: int,
        parent: QModelIndex | QPersistentModelIndex,
    ) -> bool:
        rows = dropped_rows(data, self.drag_mime)
        if rows is None:
            return False
        if row < 0:
            row = parent.row() if parent.isValid() else self.rowCount()  # type: ignore[attr-defined]
        self.move_rows(rows, row)
        return False  # the move is done; the view must not remove the source rows itself

    def move_rows(self, rows: list[int], to: int) -> None:
        raise NotImplementedError
