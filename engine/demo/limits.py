"""What the demo model can and cannot do, said before a render: the words it knows and the size it renders at.

The demo model learned one small world (engine.demo.world): coloured shapes on plain backgrounds, 64 pixels
across. A caption with other words reaches it as characters it never saw together, and a large canvas costs
minutes per step while it can only draw at its own scale. So it renders any canvas at its own scale (the
canvas's aspect ratio, the shorter side at 64 pixels: `render_size`), and `check` says what a scene asks of
it that it cannot do, for the GUI's pre-flight banner and `main.py render` alike.

Torch-free and Qt-free: it imports only the world's word lists (a test keeps it so).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from engine.demo.world import BACKGROUNDS, COLOURS, SHAPES, instance_captions

MODEL_ID: Final = "demo"
# The bundled model's own scale: its world is NATIVE_SIDE pixels across (its VAE's sample_size), and a
# side must be a multiple of SIZE_MULTIPLE (VAE x4, UNet x4). A loaded model passes its own values.
NATIVE_SIDE: Final = 64
SIZE_MULTIPLE: Final = 16
MAX_STRETCH: Final = 4  # the longer side at most this many times the shorter (a 4096x64 canvas: 256x64)

_ARTICLES: Final = frozenset({"a", "an"})
_WORD: Final = re.compile(r"[^\W_]+")
_SPELLINGS: Final = {"gray": "grey"}  # a word it lacks -> the one it knows
MAX_LISTED: Final = 6  # unknown words named per caption


def render_size(
    width: int, height: int, side: int = NATIVE_SIDE, multiple: int = SIZE_MULTIPLE, max_stretch: int = MAX_STRETCH
) -> tuple[int, int]:
    """The size a model whose scale is `side` pixels renders a `width` x `height` canvas at.

    The canvas's aspect ratio as closely as `multiple` allows, the shorter side at `side`: 512x512 and
    1280x1280 -> 64x64, 768x512 -> 96x64, 512x768 -> 64x96. Geometry is normalised, so the layout carries over.
    """
    short, long = sorted((width, height))
    stretched = max(side, min(max_stretch * side, round(side * long / short / multiple) * multiple))
    return (stretched, side) if width > height else (side, stretched)


def known_words() -> frozenset[str]:
    """Every word of the world's captions: articles, colours, shapes, background names, 'and', 'on'."""
    words = {"a", "an", "and", "on", "background", *SHAPES, *COLOURS}
    for name in BACKGROUNDS:
        words.update(name.split())
    return frozenset(words)


def words_of(caption: str) -> list[str]:
    """The caption's words, lowercased (the tokenizer lowercases too), without punctuation."""
    return _WORD.findall(caption.lower())


def unknown_words(caption: str) -> list[str]:
    """The words of `caption` the demo model never saw, each once, in the caption's order."""
    known = known_words()
    return list(dict.fromkeys(word for word in words_of(caption) if word not in known))


def _or_list(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def explain() -> str:
    """What the demo model knows, in one sentence."""
    return (
        f"the demo model draws only coloured shapes: a {_or_list(list(COLOURS))} "
        f"{_or_list(list(SHAPES))}, on a {_or_list(list(BACKGROUNDS))} background"
    )


def _quoted(words: Sequence[str]) -> str:
    """The first few words, quoted, then how many more (a banner line stays short)."""
    shown = [f"“{w}”" + (f" (it knows “{_SPELLINGS[w]}”)" if w in _SPELLINGS else "") for w in words[:MAX_LISTED]]
    more = len(words) - MAX_LISTED
    return ", ".join(shown) + (f" and {more} more word{'s' if more > 1 else ''}" if more > 0 else "")


def instance_label(slot: int, caption: str) -> str:
    """How a warning names an instance: 'instance 2 (a red circle)', slots counted from 1."""
    return f"instance {slot}" + (f" ({caption[:30]})" if caption else "")


@dataclass(frozen=True)
class Finding:
    message: str
    instance: int | None = None  # the index of the instance caption it is about; None: the scene
    info: bool = False  # something to know (the size it renders at), not something wrong


def check(prompt: str, captions: Sequence[str], width: int, height: int) -> list[Finding]:
    """What a render of this scene with the demo model will not do as asked, one finding per line.

    The size it really renders at (when that is not the canvas's), then what it knows (when a caption
    has a word it does not), then the unknown words of the scene's caption and of each instance's, and
    instance captions made of known words but unlike any it learned (“a white circle”, “red”).
    """
    findings: list[Finding] = []
    size = render_size(width, height)
    if size != (width, height):
        findings.append(
            Finding(
                f"the demo model renders at its own scale: this {width}x{height} canvas becomes a "
                f"{size[0]}x{size[1]} image (shown scaled to the canvas)",
                info=True,
            )
        )
    unknown: list[Finding] = []
    if words := unknown_words(prompt):
        unknown.append(Finding(f"the caption: the demo model does not know {_quoted(words)}"))
    learned = {_normalised(caption) for caption in instance_captions()}
    for index, caption in enumerate(captions):
        name = instance_label(index + 1, caption)
        if words := unknown_words(caption):
            unknown.append(Finding(f"{name}: the demo model does not know {_quoted(words)}", index))
        elif words_of(caption) and _normalised(caption) not in learned:
            unknown.append(
                Finding(f"{name}: the demo model learned only a colour and a shape, like “a red circle”", index)
            )
    if unknown:
        findings.append(Finding(explain()))
    return findings + unknown


def _normalised(caption: str) -> tuple[str, ...]:
    """A caption's words without articles: "an orange star" and "orange star" are the same caption."""
    return tuple(word for word in words_of(caption) if word not in _ARTICLES)
