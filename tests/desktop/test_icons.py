"""The icon files are well formed and `desktop.icons` renders them in the colour asked for."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QIcon, QImage, QPalette
from PySide6.QtWidgets import QApplication

from desktop import icons

SVG_NS = "{http://www.w3.org/2000/svg}"
ALL_FILES = sorted(icons.ICON_DIR.glob("*.svg"))


def _image(icon: QIcon, size: int = 24, mode: QIcon.Mode = QIcon.Mode.Normal) -> QImage:
    # Unpremultiplied ARGB so that pixelColor reads the drawn colour, not one scaled by coverage.
    return icon.pixmap(size, mode).toImage().convertToFormat(QImage.Format.Format_ARGB32)


def _pixels(image: QImage) -> Iterator[QColor]:
    for y in range(image.height()):
        for x in range(image.width()):
            yield image.pixelColor(x, y)


def _solid(image: QImage) -> list[QColor]:
    """Pixels the drawing covers well; faint antialiased edges carry too little colour to judge."""
    return [p for p in _pixels(image) if p.alpha() >= 128]


@pytest.fixture(autouse=True)
def fresh_cache(qapp: QApplication) -> Iterator[None]:
    icons.clear_cache()
    yield
    icons.clear_cache()


def test_every_listed_icon_has_a_file_and_every_file_is_listed() -> None:
    on_disk = {path.stem for path in ALL_FILES}
    assert set(icons.ICON_NAMES) | {"app"} == on_disk
    assert len(set(icons.ICON_NAMES)) == len(icons.ICON_NAMES)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_every_svg_parses_and_is_a_24px_square(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("viewBox") == "0 0 24 24"
    assert (root.get("width"), root.get("height")) == ("24", "24")


@pytest.mark.parametrize("name", icons.ICON_NAMES)
def test_theme_icons_are_drawn_only_in_the_placeholder_colour(name: str) -> None:
    text = (icons.ICON_DIR / f"{name}.svg").read_text(encoding="utf-8")
    root = ET.fromstring(text)
    # One line weight and rounded ends everywhere keep the set looking like one set.
    assert root.get("stroke") == icons.PLACEHOLDER
    assert root.get("stroke-width") == "1.75"
    assert root.get("stroke-linecap") == root.get("stroke-linejoin") == "round"
    colours = {c.lower() for c in re.findall(r"#[0-9a-fA-F]{3,8}\b", text)}
    assert colours == {icons.PLACEHOLDER}
    assert "rgb(" not in text and "url(" not in text


@pytest.mark.parametrize("name", icons.ICON_NAMES)
def test_every_icon_renders_something_at_24px(name: str) -> None:
    image = _image(icons.icon(name))
    assert (image.width(), image.height()) == (24, 24)
    covered = _solid(image)
    # Drawn, but a line icon: neither an empty square nor a filled one.
    assert 20 <= len(covered) <= 24 * 24 * 0.6


@pytest.mark.parametrize("name", icons.ICON_NAMES)
def test_recolouring_paints_the_asked_colour_and_leaves_no_black(name: str) -> None:
    covered = _solid(_image(icons.icon(name, "#ff0000")))
    assert any(p.red() >= 240 and p.green() <= 15 and p.blue() <= 15 for p in covered)
    assert all(p.red() >= 200 and p.green() <= 40 and p.blue() <= 40 for p in covered)


def test_default_colour_is_the_palette_text_colour(qapp: QApplication) -> None:
    text = qapp.palette().color(QPalette.ColorRole.WindowText)
    covered = _solid(_image(icons.icon("lock")))
    assert any(p.rgb() == text.rgb() for p in covered)


def test_colour_may_be_a_qcolor_and_translucency_is_kept() -> None:
    opaque = _solid(_image(icons.icon("cancel", QColor(0, 200, 0))))
    assert any(p.rgb() == QColor(0, 200, 0).rgb() for p in opaque)
    half = _image(icons.icon("cancel", QColor(0, 200, 0, 128)))
    assert max(p.alpha() for p in _pixels(half)) <= 130


def test_disabled_state_is_drawn_in_the_disabled_text_colour(qapp: QApplication) -> None:
    icon = icons.icon("render", "#ff0000")
    normal = _image(icon)
    disabled = _image(icon, mode=QIcon.Mode.Disabled)
    assert normal != disabled
    grey = qapp.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
    assert any(p.rgb() == grey.rgb() for p in _solid(disabled))


@pytest.mark.parametrize("size", icons.SIZES)
def test_each_size_has_its_own_pixmap(size: int) -> None:
    icon = icons.icon("box")
    assert any(s.width() == size for s in icon.availableSizes())
    assert icon.pixmap(size).width() == size


def test_icons_are_cached_per_name_and_colour() -> None:
    assert icons.icon("undo").cacheKey() == icons.icon("undo").cacheKey()
    assert icons.icon("undo", "#ff0000").cacheKey() == icons.icon("undo", QColor("#ff0000")).cacheKey()
    assert icons.icon("undo").cacheKey() != icons.icon("redo").cacheKey()
    assert icons.icon("undo", "#ff0000").cacheKey() != icons.icon("undo", "#00ff00").cacheKey()


def test_clear_cache_makes_new_icons() -> None:
    before = icons.icon("undo").cacheKey()
    icons.clear_cache()
    assert icons.icon("undo").cacheKey() != before


def test_unknown_icon_raises_key_error_naming_only_it() -> None:
    with pytest.raises(KeyError, match="no-such-icon") as excinfo:
        icons.icon("no-such-icon")
    message = str(excinfo.value)
    assert not any(f"'{name}'" in message for name in icons.ICON_NAMES)


def test_the_app_icon_is_not_a_theme_icon() -> None:
    with pytest.raises(KeyError, match="app"):
        icons.icon("app")


def test_bad_colour_is_refused() -> None:
    with pytest.raises(ValueError, match="not-a-colour"):
        icons.icon("box", "not-a-colour")


def test_app_icon_keeps_its_own_colours() -> None:
    app = icons.app_icon()
    assert not app.isNull()
    assert any(s.width() >= 256 for s in app.availableSizes())
    covered = _solid(_image(app, 48))
    # Opaque over the whole rounded square and clearly colourful, not a one-colour glyph.
    assert len(covered) > 48 * 48 * 0.8
    saturated = {(p.red() // 32, p.green() // 32, p.blue() // 32) for p in covered if p.hsvSaturation() > 150}
    assert len(saturated) >= 3
