from pytestqt.qtbot import QtBot

from desktop.app import APP_NAME, PlaceholderWindow, default_summary


def test_placeholder_window_shows_the_app_and_the_project(qtbot: QtBot, tmp_path: object) -> None:
    window = PlaceholderWindow(default_summary(None))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.windowTitle() == APP_NAME
    assert "main.py --help" in window.summary.text()
    assert default_summary(tmp_path) == f"Project: {tmp_path}"  # type: ignore[arg-type]
