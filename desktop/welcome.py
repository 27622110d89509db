"""The start page: recent projects, New, Open, and the bundled sample project."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings, QSize, Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.icons import app_icon, icon

MAX_RECENT = 10


def recent_projects(settings: QSettings) -> list[Path]:
    raw = settings.value("recentProjects", [])
    # QSettings' INI format gives back one string for a one-item list.
    items = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list | tuple) else []
    return [Path(str(p)) for p in items if p]


def remember_project(settings: QSettings, path: Path) -> None:
    paths = [p for p in recent_projects(settings) if p != path]
    settings.setValue("recentProjects", [str(p) for p in [path, *paths][:MAX_RECENT]])


class WelcomePage(QWidget):
    newRequested = Signal()
    openRequested = Signal()
    sampleRequested = Signal()
    recentRequested = Signal(str)

    def __init__(self, settings: QSettings) -> None:
        super().__init__()
        self.settings = settings
        self.setObjectName("welcome")
        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(72, 72))
        title = QLabel(
            "<h1 style='margin:0'>Instance Studio</h1>"
            "<p style='color:#9a9ca3'>Compose scenes instance by instance; render them in batch.</p>"
        )
        header = QHBoxLayout()
        header.addWidget(logo)
        header.addWidget(title, 1)

        buttons = QHBoxLayout()
        for name, text, signal in (
            ("new-project", "New project…", self.newRequested),
            ("open-project", "Open…", self.openRequested),
            ("sample-project", "Open the sample project", self.sampleRequested),
        ):
            button = QPushButton(icon(name), text)
            button.setIconSize(QSize(20, 20))
            button.setMinimumHeight(36)
            button.clicked.connect(signal.emit)
            button.setObjectName(f"welcome-{name}")
            buttons.addWidget(button)
        buttons.addStretch(1)

        self.recent = QListWidget()
        self.recent.setObjectName("recentProjects")
        self.recent.itemActivated.connect(lambda item: self.recentRequested.emit(item.data(Qt.ItemDataRole.UserRole)))

        column = QVBoxLayout()
        column.addLayout(header)
        column.addSpacing(16)
        column.addLayout(buttons)
        column.addSpacing(16)
        column.addWidget(QLabel("<b>Recent projects</b>"))
        column.addWidget(self.recent, 1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column, 3)
        outer.addStretch(1)
        self.refresh()

    def refresh(self) -> None:
        self.recent.clear()
        for path in recent_projects(self.settings):
            item = QListWidgetItem(f"{path.stem}\n{path.parent}")
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            if not path.exists():
                item.setText(f"{path.stem}  (missing)\n{path.parent}")
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.recent.addItem(item)
        if self.recent.count() == 0:
            placeholder = QListWidgetItem("No recent projects yet: start with the sample project.")
            placeholder.setFlags(Qt.ItemFlag.NoItemFlags)
            self.recent.addItem(placeholder)
