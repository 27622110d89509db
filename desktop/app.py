"""The GUI entry point: the application object, the theme, and the first window.

On the very first start (no recent projects) the window opens the user's copy of the bundled sample
project, so the app shows something real at once; later starts show the welcome page.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from desktop.icons import app_icon
from desktop.main_window import APP_NAME, MainWindow, theme_name
from desktop.theme import apply_theme
from desktop.welcome import recent_projects


def make_settings(data_dir: Path) -> QSettings:
    """Window and editor preferences, kept in an INI file beside the app's other user data."""
    return QSettings(str(data_dir / "gui.ini"), QSettings.Format.IniFormat)


def create_window(data_dir: Path, project: Path | None = None, model_settings_path: Path | None = None) -> MainWindow:
    app = QApplication.instance()
    assert isinstance(app, QApplication), "create the QApplication first"
    settings = make_settings(data_dir)
    apply_theme(app, theme_name(settings))  # type: ignore[arg-type]
    window = MainWindow(settings, data_dir, model_settings_path)
    if project is not None:
        window.open_project(project)
    elif not recent_projects(settings):
        window.open_sample()
    return window


def run(
    argv: Sequence[str], data_dir: Path, project: Path | None = None, model_settings_path: Path | None = None
) -> int:
    app = QApplication.instance() or QApplication(list(argv))
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setWindowIcon(app_icon())
    window = create_window(data_dir, project, model_settings_path)
    window.show()
    return app.exec()
