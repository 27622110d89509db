"""Help: the keyboard shortcuts (read from the window's own actions, so the list cannot go stale) and the
first-run hint on the canvas."""

from __future__ import annotations

import html

from PySide6.QtCore import QObject, QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from desktop.canvas.overlay import CanvasOverlay
from desktop.canvas.tools import TOOLS
from desktop.editor.connections import Connections
from desktop.editor.scene_editor import SceneEditor

FIRST_RUN_HINT = (
    "<b>B</b> draws a box, then type its caption and press Enter · <b>Ctrl+Enter</b> renders the scene · "
    "<b>Help → Keyboard shortcuts</b> lists the rest"
)
HINT_DONE_KEY = "firstRunHintDone"

# Keys the canvas handles itself (no action carries them).
CANVAS_KEYS: tuple[tuple[str, str], ...] = (
    ("Delete / Backspace", "delete the selected instances"),
    ("Arrows (Shift: 10 px)", "nudge the selection"),
    ("Tab / Shift+Tab", "select the next / previous instance"),
    ("F2, double-click", "edit the caption in place (Enter keeps it, Esc puts it back)"),
    ("Esc", "cancel the shape being drawn, or clear the selection"),
    ("Enter, double-click", "close a polygon"),
    ("[ and ]", "brush and eraser radius"),
    ("Wheel", "zoom"),
    ("Middle button, Space+drag", "pan"),
)


def shortcut_rows(actions: list[QAction]) -> list[tuple[str, str]]:
    """(keys, what they do) for every action with a shortcut, then the canvas' own keys."""
    rows = []
    for act in actions:
        keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        if keys:
            info = next((t for t in TOOLS if t.label == act.text()), None)
            what = f"{info.label} tool: {info.help}" if info else act.text().replace("&", "").rstrip("…")
            rows.append((keys, what))
    return [*rows, *CANVAS_KEYS]


class ShortcutsDialog(QDialog):
    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(560, 620)
        body = "".join(
            f"<tr><td style='padding:2px 12px 2px 0'><b>{html.escape(keys)}</b></td><td>{html.escape(what)}</td></tr>"
            for keys, what in shortcut_rows(actions)
        )
        self.text = QTextBrowser()
        self.text.setHtml(f"<p>{FIRST_RUN_HINT}</p><table>{body}</table>")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(buttons)


class FirstRunHint(QObject):
    """The hint at the bottom of the canvas: shown on an empty scene, and on every scene until the user has
    drawn a first instance (remembered in the settings)."""

    def __init__(self, canvas: QWidget, settings: QSettings) -> None:
        super().__init__(canvas)
        self.settings = settings
        self.overlay = CanvasOverlay(canvas, bottom=True, object_name="firstRunHint")
        self.overlay.setStyleSheet(
            "QLabel#firstRunHint { background: rgba(30, 60, 90, 220); color: #e8f1ff; padding: 6px 10px;"
            " border-radius: 4px; }"
        )
        self._editor: SceneEditor | None = None
        self._links = Connections()

    @property
    def done(self) -> bool:
        return self.settings.value(HINT_DONE_KEY, False, type=bool) is True

    def follow(self, editor: SceneEditor | None) -> None:
        self._links.clear()
        self._editor = editor
        if editor is not None:
            self._links.connect(editor.undo_stack.indexChanged, self.update)  # after each edit is recorded
        self.update()

    def update(self) -> None:
        editor = self._editor
        if not self.done and editor is not None and editor.scene.instances and editor.undo_stack.count():
            self.settings.setValue(HINT_DONE_KEY, True)  # the user has drawn something: they know
        empty = editor is not None and not editor.scene.instances
        self.overlay.show_text(FIRST_RUN_HINT if editor is not None and (empty or not self.done) else "")
