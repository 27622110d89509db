"""The GUI entry point. Until the scene editor lands, a window that shows the open project."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QVBoxLayout, QWidget

APP_NAME = "Instance Studio"


class PlaceholderWindow(QMainWindow):
    def __init__(self, summary: str) -> None:
        super().__init__()
        self.setWindowTitle(APP_NAME)
        self.resize(960, 640)
        body = QWidget()
        layout = QVBoxLayout(body)
        title = QLabel(f"<h1>{APP_NAME}</h1>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary = QLabel(summary)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(self.summary)
        layout.addStretch(1)
        self.setCentralWidget(body)


def run(argv: Sequence[str], summary: str) -> int:
    app = QApplication.instance() or QApplication(list(argv))
    app.setApplicationName(APP_NAME)
    window = PlaceholderWindow(summary)
    window.show()
    return app.exec()


def default_summary(project: Path | None) -> str:
    if project is None:
        return "The scene editor is on its way. Use `python main.py --help` for the headless commands."
    return f"Project: {project}"


if __name__ == "__main__":
    sys.exit(run(sys.argv, default_summary(None)))
