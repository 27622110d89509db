"""The application's line icons, recoloured to follow the theme.

Every icon in `resources/icons` is drawn with the literal colour `#000000` wherever it should take the
theme's text colour; `icon()` swaps that for a real colour and renders the SVG into pixmaps at a few
fixed sizes, so icons stay crisp on toolbars, menus and high-DPI screens alike. `app.svg` keeps its
own colours and is reached through `app_icon()`.
"""

from __future__ import annotations

from functools import cache

from PySide6.QtCore import QByteArray, QRectF, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QImage, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

from resources import resource_path

ICON_DIR = resource_path("icons")

ICON_NAMES: tuple[str, ...] = (
    # Canvas tools.
    "select",
    "box",
    "point",
    "scribble",
    "polygon",
    "brush",
    "eraser",
    # View.
    "zoom-in",
    "zoom-out",
    "zoom-fit",
    # Editing.
    "undo",
    "redo",
    "duplicate",
    "delete",
    "clear",
    "move-up",
    "move-down",
    "move-to-front",
    "lock",
    "unlock",
    "dice",
    # Rendering and the queue.
    "render",
    "render-all",
    "variations",
    "pause",
    "resume",
    "cancel",
    "retry",
    "compare",
    "restore",
    # Projects and scenes.
    "add-scene",
    "new-project",
    "open-project",
    "sample-project",
    "export",
    "import",
    "settings",
    "warning",
)

# The sizes a QIcon gets pixmaps for; Qt picks the nearest and scales down, never up, when it can.
SIZES: tuple[int, ...] = (16, 24, 32, 48)

# The colour in the SVG files that stands for "the theme's text colour".
PLACEHOLDER = "#000000"

_cache: dict[tuple[str, str, str], QIcon] = {}


def icon(name: str, color: QColor | str | None = None) -> QIcon:
    """The icon `name` drawn in `color` (default: the palette's text colour), with a greyed disabled state."""
    if name not in ICON_NAMES:
        raise KeyError(f"unknown icon {name!r}")
    _require_gui_application()
    palette = QGuiApplication.palette()
    normal = QColor(color) if color is not None else palette.color(QPalette.ColorRole.WindowText)
    if not normal.isValid():
        raise ValueError(f"not a colour: {color!r}")
    disabled = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
    # The disabled colour is in the key too: a palette can change without apply_theme clearing the cache.
    key = (name, normal.name(QColor.NameFormat.HexArgb), disabled.name(QColor.NameFormat.HexArgb))
    cached = _cache.get(key)
    if cached is None:
        cached = QIcon()
        for mode, colour in ((QIcon.Mode.Normal, normal), (QIcon.Mode.Disabled, disabled)):
            renderer = QSvgRenderer(QByteArray(_recoloured(name, colour)))
            for size in SIZES:
                cached.addPixmap(_render(renderer, size, colour.alphaF()), mode)
        _cache[key] = cached
    # A copy shares the pixmaps (and the cacheKey) but keeps callers from altering the cached icon.
    return QIcon(cached)


def app_icon() -> QIcon:
    """The application's own coloured mark, for window titles, the taskbar and the about box."""
    _require_gui_application()
    renderer = QSvgRenderer(str(ICON_DIR / "app.svg"))
    result = QIcon()
    for size in (*SIZES, 64, 128, 256):
        result.addPixmap(_render(renderer, size))
    return result


def clear_cache() -> None:
    """Forget rendered icons, so that icons made from now on pick up a new palette."""
    _cache.clear()


@cache
def _svg_text(name: str) -> str:
    # The files never change while the app runs; only the colour substituted into them does.
    return (ICON_DIR / f"{name}.svg").read_text(encoding="utf-8")


def _recoloured(name: str, colour: QColor) -> bytes:
    # #rrggbb carries no alpha; a translucent colour's alpha is applied as the painter's opacity instead.
    return _svg_text(name).replace(PLACEHOLDER, colour.name(QColor.NameFormat.HexRgb)).encode("utf-8")


def _render(renderer: QSvgRenderer, size: int, opacity: float = 1.0) -> QPixmap:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setOpacity(opacity)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return QPixmap.fromImage(image)


def _require_gui_application() -> None:
    # QPixmap and the palette need a running QGuiApplication; without one Qt aborts the process.
    if QGuiApplication.instance() is None:
        raise RuntimeError("icons need a QApplication; create it before asking for icons")
