"""The colour an instance is drawn in: its slot colour, or — so that "a blue circle" is not outlined in
yellow — the colour its caption names."""

from __future__ import annotations

import re

# Colour words a caption commonly uses, as they read on the canvas.
CAPTION_COLORS: dict[str, str] = {
    "red": "#e53935", "orange": "#fb8c00", "yellow": "#fdd835", "green": "#43a047", "blue": "#1e88e5",
    "purple": "#8e24aa", "violet": "#8e24aa", "pink": "#ec407a", "brown": "#8d6e63", "black": "#212121",
    "white": "#fafafa", "grey": "#9e9e9e", "gray": "#9e9e9e", "cyan": "#00acc1", "teal": "#00897b",
    "magenta": "#d81b60", "gold": "#ffc107", "golden": "#ffc107", "silver": "#bdbdbd", "beige": "#d7ccc8",
    "navy": "#1a237e", "turquoise": "#26c6da",
}  # fmt: skip
_WORDS = re.compile(r"[a-z]+")


def caption_color(caption: str) -> str | None:
    """The first colour the caption names ("a light blue kite" → blue), or None."""
    for word in _WORDS.findall(caption.lower()):
        if word in CAPTION_COLORS:
            return CAPTION_COLORS[word]
    return None
