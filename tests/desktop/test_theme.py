"""`apply_theme` restyles the app: style, palette, stylesheet, and icons that follow the new text colour."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage, QPalette
from PySide6.QtWidgets import QApplication, QMainWindow, QToolBar, QToolButton
from pytestqt.qtbot import QtBot

from desktop import icons
from desktop.theme import PALETTES, THEMES, ThemeName, apply_theme, current_theme

ROLE = QPalette.ColorRole


@pytest.fixture(autouse=True)
def restore_app(qapp: QApplication) -> Iterator[None]:
    """Themes change the one application every test shares; put it back as it was."""
    sheet = qapp.styleSheet()
    qapp.setStyleSheet("")  # so that style() is the real style, not the stylesheet wrapper
    style, palette = qapp.style().name(), qapp.palette()
    scheme = qapp.styleHints().colorScheme()
    theme = qapp.property("instanceStudioTheme")
    yield
    qapp.setStyleSheet(sheet)
    qapp.setStyle(style)
    qapp.setPalette(palette)
    qapp.styleHints().setColorScheme(scheme)
    qapp.setProperty("instanceStudioTheme", theme)
    icons.clear_cache()


def _luminance(c: QColor) -> float:
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def _contrast(a: QColor, b: QColor) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_the_themes_are_dark_and_light() -> None:
    assert THEMES == ("dark", "light")
    assert set(PALETTES) == set(THEMES)


def test_dark_and_light_differ_where_it_shows(qapp: QApplication) -> None:
    apply_theme(qapp, "dark")
    dark_window = qapp.palette().color(ROLE.Window)
    dark_sheet = qapp.styleSheet()
    apply_theme(qapp, "light")
    light_window = qapp.palette().color(ROLE.Window)
    assert dark_window.name() == "#1e1f22"
    assert dark_window != light_window
    assert _luminance(dark_window) < 0.05 < 0.8 < _luminance(light_window)
    assert dark_sheet.strip() and qapp.styleSheet().strip()
    assert dark_sheet != qapp.styleSheet()


@pytest.mark.parametrize("name", THEMES)
def test_a_theme_sets_fusion_a_stylesheet_and_remembers_its_name(qapp: QApplication, name: ThemeName) -> None:
    apply_theme(qapp, name)
    sheet = qapp.styleSheet()
    for selector in ("QToolButton:hover", "QToolButton:checked", "QDockWidget::title", "QScrollBar", "QToolTip"):
        assert selector in sheet
    assert current_theme(qapp) == name
    assert qapp.palette().color(ROLE.Highlight).name() == PALETTES[name].highlight
    # Behind a stylesheet app.style() is Qt's wrapper; without one the base style shows its name.
    qapp.setStyleSheet("")
    assert qapp.style().name() == "fusion"


@pytest.mark.parametrize("name", THEMES)
def test_text_is_readable_in_every_theme(qapp: QApplication, name: ThemeName) -> None:
    apply_theme(qapp, name)
    palette = qapp.palette()
    # WCAG AA for body text; selected text on the highlight at least the large-text level.
    for text, background in (
        (ROLE.WindowText, ROLE.Window),
        (ROLE.Text, ROLE.Base),
        (ROLE.ToolTipText, ROLE.ToolTipBase),
    ):
        assert _contrast(palette.color(text), palette.color(background)) >= 4.5
    assert _contrast(palette.color(ROLE.HighlightedText), palette.color(ROLE.Highlight)) >= 3.0
    disabled = palette.color(QPalette.ColorGroup.Disabled, ROLE.WindowText)
    assert disabled != palette.color(ROLE.WindowText)
    assert _contrast(disabled, palette.color(ROLE.Window)) < _contrast(
        palette.color(ROLE.WindowText), palette.color(ROLE.Window)
    )


def test_unknown_theme_is_refused(qapp: QApplication) -> None:
    with pytest.raises(ValueError, match="sepia"):
        apply_theme(qapp, "sepia")  # type: ignore[arg-type]


def test_current_theme_before_any_is_applied_is_the_default(qapp: QApplication) -> None:
    qapp.setProperty("instanceStudioTheme", None)
    assert current_theme(qapp) == "dark"


def test_a_theme_change_clears_the_icon_cache(qapp: QApplication) -> None:
    apply_theme(qapp, "dark")
    before = icons.icon("select").cacheKey()
    assert icons.icon("select").cacheKey() == before
    # Even re-applying the same theme drops the rendered icons.
    apply_theme(qapp, "dark")
    assert icons.icon("select").cacheKey() != before


@pytest.mark.parametrize("name", THEMES)
def test_icons_made_after_a_theme_change_follow_its_text_colour(qapp: QApplication, name: ThemeName) -> None:
    apply_theme(qapp, "light" if name == "dark" else "dark")
    icons.icon("box")
    apply_theme(qapp, name)
    image = icons.icon("box").pixmap(24).toImage().convertToFormat(QImage.Format.Format_ARGB32)
    colours = {
        image.pixelColor(x, y).rgb() for y in range(24) for x in range(24) if image.pixelColor(x, y).alpha() == 255
    }
    assert colours == {QColor(PALETTES[name].text).rgb()}


@pytest.mark.parametrize("name", THEMES)
def test_a_checked_tool_button_gets_a_highlighted_background(
    qtbot: QtBot, qapp: QApplication, name: ThemeName
) -> None:
    apply_theme(qapp, name)
    window = QMainWindow()
    qtbot.addWidget(window)
    toolbar = QToolBar()
    window.addToolBar(toolbar)
    buttons: list[QToolButton] = []
    for checked in (False, True):
        button = QToolButton()
        button.setText("Box")
        button.setCheckable(True)
        button.setChecked(checked)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        toolbar.addWidget(button)
        buttons.append(button)
    window.show()
    qtbot.waitExposed(window)

    shot = window.grab().toImage()

    def inner_pixel(button: QToolButton) -> QColor:
        # Just inside the 1px border, level with the text but left of it: the button's own background.
        return shot.pixelColor(button.mapTo(window, QPoint(3, button.height() // 2)))

    plain, tinted = (inner_pixel(b) for b in buttons)
    assert plain.rgb() == QColor(PALETTES[name].window).rgb()
    assert tinted.rgb() != plain.rgb()
    # Tinted towards the highlight: its blue share grows.
    assert tinted.blue() - tinted.red() > plain.blue() - plain.red()
