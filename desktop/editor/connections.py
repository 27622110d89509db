"""Connections a view makes to the current scene's editor, undone in one call when another scene opens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QMetaObject, QObject, SignalInstance


class Connections:
    def __init__(self) -> None:
        self._handles: list[QMetaObject.Connection] = []

    def connect(self, signal: SignalInstance, slot: Callable[..., Any]) -> None:
        self._handles.append(signal.connect(slot))

    def clear(self) -> None:
        for handle in self._handles:
            QObject.disconnect(handle)
        self._handles.clear()
