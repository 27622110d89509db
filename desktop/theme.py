"""Dark and light looks for the app: the Fusion style, a palette, and a small stylesheet on top.

Fusion draws every widget from the palette, so the palette does most of the work and looks the same on
every platform; the stylesheet only adds what a palette cannot say (rounded hover backgrounds on tool
buttons, padded dock titles, slim scrollbars). Icons follow the palette's text colour, so a theme change
clears the icon cache; widgets that already hold icons should ask for them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from desktop import icons

ThemeName = Literal["dark", "light"]
THEMES: tuple[ThemeName, ...] = get_args(ThemeName)
DEFAULT_THEME: ThemeName = "dark"

# Where the applied theme's name is kept: on the application itself, so there is no module state to drift.
_PROPERTY = "instanceStudioTheme"


@dataclass(frozen=True)
class Colors:
    window: str  # panels, toolbars, dock backgrounds
    base: str  # inputs, lists, the canvas surround
    alternate: str  # alternate rows, dock titles
    raised: str  # buttons
    hover: str  # tool button under the mouse
    border: str  # the 1px lines between things
    text: str
    text_disabled: str
    placeholder: str
    highlight: str  # selection and the checked tool
    highlighted_text: str
    link: str
    tooltip_base: str
    tooltip_text: str
    scrollbar: str
    scrollbar_hover: str


PALETTES: dict[ThemeName, Colors] = {
    "dark": Colors(
        window="#1e1f22",
        base="#2b2d31",
        alternate="#313338",
        raised="#2b2d31",
        hover="#35373c",
        border="#3a3c42",
        text="#dcddde",
        text_disabled="#6d6f78",
        placeholder="#80848e",
        highlight="#4f8cff",
        highlighted_text="#ffffff",
        link="#6ea0ff",
        tooltip_base="#111214",
        tooltip_text="#dcddde",
        scrollbar="#4a4d55",
        scrollbar_hover="#5d616b",
    ),
    "light": Colors(
        window="#f2f3f5",
        base="#ffffff",
        alternate="#e9eaed",
        raised="#ffffff",
        hover="#e1e3e7",
        border="#d0d3d8",
        text="#1f2328",
        text_disabled="#a0a4ab",
        placeholder="#8a8f98",
        highlight="#2f6fed",
        highlighted_text="#ffffff",
        link="#2f6fed",
        tooltip_base="#ffffff",
        tooltip_text="#1f2328",
        scrollbar="#c4c7cd",
        scrollbar_hover="#a9adb5",
    ),
}


def apply_theme(app: QApplication, name: ThemeName = DEFAULT_THEME) -> None:
    """Restyle the whole application; later calls switch themes in place."""
    if name not in PALETTES:
        raise ValueError(f"unknown theme {name!r}; the themes are {', '.join(THEMES)}")
    colors = PALETTES[name]
    # Tell the platform too, so native pieces (title bars, file dialogs) match; set before the palette,
    # because a scheme change may make Qt reload the platform palette.
    app.styleHints().setColorScheme(Qt.ColorScheme.Dark if name == "dark" else Qt.ColorScheme.Light)
    # setStyle replaces the style object and resets the palette, so do it only on the first theme. (Once a
    # stylesheet is set, app.style() is Qt's stylesheet wrapper and can no longer be asked its name.)
    if app.property(_PROPERTY) not in PALETTES:
        app.setStyle("Fusion")
    app.setPalette(_palette(colors))
    app.setStyleSheet(_stylesheet(colors))
    app.setProperty(_PROPERTY, name)
    icons.clear_cache()


def current_theme(app: QApplication) -> str:
    """The theme last applied to `app`, or the default one if none has been applied yet."""
    value = app.property(_PROPERTY)
    return value if isinstance(value, str) and value in PALETTES else DEFAULT_THEME


def _palette(c: Colors) -> QPalette:
    role = QPalette.ColorRole
    palette = QPalette()
    for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive, QPalette.ColorGroup.Disabled):
        enabled = group != QPalette.ColorGroup.Disabled
        text = QColor(c.text if enabled else c.text_disabled)
        for r, value in (
            (role.Window, QColor(c.window)),
            (role.Base, QColor(c.base)),
            (role.AlternateBase, QColor(c.alternate)),
            (role.Button, QColor(c.raised)),
            (role.WindowText, text),
            (role.Text, text),
            (role.ButtonText, text),
            (role.PlaceholderText, QColor(c.placeholder)),
            (role.BrightText, QColor("#ff5c5c")),
            (role.Highlight, QColor(c.highlight if enabled else c.border)),
            (role.HighlightedText, QColor(c.highlighted_text if enabled else c.text_disabled)),
            (role.Accent, QColor(c.highlight)),
            (role.Link, QColor(c.link)),
            (role.LinkVisited, QColor(c.link)),
            (role.ToolTipBase, QColor(c.tooltip_base)),
            (role.ToolTipText, QColor(c.tooltip_text)),
            # Fusion shades bevels and frames from these; derive them so edges stay subtle in both themes.
            (role.Light, QColor(c.hover)),
            (role.Midlight, QColor(c.alternate)),
            (role.Mid, QColor(c.border)),
            (role.Dark, QColor(c.border)),
            (role.Shadow, QColor(c.window).darker(160)),
        ):
            palette.setColor(group, r, value)
    return palette


def _stylesheet(c: Colors) -> str:
    # Only selectors Fusion leaves plain; styling spin boxes or combo boxes here would force styling every
    # sub-control of them too.
    return f"""
QToolTip {{
    color: {c.tooltip_text}; background-color: {c.tooltip_base};
    border: 1px solid {c.border}; border-radius: 4px; padding: 4px 6px;
}}
QMainWindow::separator {{ background: {c.window}; width: 4px; height: 4px; }}
QMainWindow::separator:hover {{ background: {c.highlight}; }}
QDockWidget::title {{
    background: {c.alternate}; padding: 6px 8px; border-bottom: 1px solid {c.border};
}}
QToolBar {{ background: {c.window}; border: none; border-bottom: 1px solid {c.border}; padding: 3px; spacing: 2px; }}
QToolBar::separator {{ background: {c.border}; width: 1px; height: 1px; margin: 4px 6px; }}
QToolButton {{
    background: transparent; border: 1px solid transparent; border-radius: 6px; padding: 4px;
}}
QToolButton:hover {{ background: {c.hover}; border-color: {c.border}; }}
QToolButton:pressed {{ background: {c.alternate}; }}
QToolButton:checked {{ background: {_mix(c.highlight, c.window, 0.28)}; border-color: {c.highlight}; }}
QStatusBar {{ border-top: 1px solid {c.border}; }}
QStatusBar::item {{ border: none; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 0; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 0; }}
QScrollBar::handle {{ background: {c.scrollbar}; border-radius: 3px; margin: 2px; }}
QScrollBar::handle:hover {{ background: {c.scrollbar_hover}; }}
QScrollBar::handle:vertical {{ min-height: 24px; }}
QScrollBar::handle:horizontal {{ min-width: 24px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ width: 0; height: 0; border: none; background: none; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: none; }}
"""


def _mix(a: str, b: str, amount: float) -> str:
    """`amount` of colour `a` over colour `b`: a tint of the highlight that text stays readable on."""
    ca, cb = QColor(a), QColor(b)
    mixed = QColor(
        round(ca.red() * amount + cb.red() * (1 - amount)),
        round(ca.green() * amount + cb.green() * (1 - amount)),
        round(ca.blue() * amount + cb.blue() * (1 - amount)),
    )
    return mixed.name()
