"""What the demo model knows and the size it renders at (engine.demo.limits), torch-free."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.demo import limits
from engine.demo.world import BACKGROUNDS, COLOURS, SHAPES, generate, instance_captions
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    ("canvas", "rendered"),
    [
        ((512, 512), (64, 64)),
        ((1280, 1280), (64, 64)),
        ((64, 64), (64, 64)),
        ((768, 512), (96, 64)),
        ((512, 768), (64, 96)),
        ((96, 64), (96, 64)),
        ((640, 512), (80, 64)),
        ((520, 512), (64, 64)),  # as close as the multiple of 16 allows
        ((4096, 64), (256, 64)),  # the longer side at most four times the shorter
    ],
)
def test_any_canvas_renders_at_the_models_own_scale(canvas: tuple[int, int], rendered: tuple[int, int]) -> None:
    assert limits.render_size(*canvas) == rendered
    width, height = limits.render_size(*canvas)
    assert width % limits.SIZE_MULTIPLE == 0 and height % limits.SIZE_MULTIPLE == 0


def test_a_model_of_another_scale_passes_its_own() -> None:
    assert limits.render_size(768, 512, side=128, multiple=32) == (192, 128)


def test_every_word_of_the_world_is_known() -> None:
    for seed in range(20):
        assert limits.unknown_words(generate(seed).caption) == []
    assert all(limits.unknown_words(caption) == [] for caption in instance_captions())


def test_unknown_words_are_listed_once_lowercased_in_order() -> None:
    assert limits.unknown_words("a gray British Shorthair, a GRAY cat!") == ["gray", "british", "shorthair", "cat"]
    assert limits.unknown_words("A Red Circle") == []


def test_a_long_list_of_unknown_words_is_cut_short() -> None:
    (_, finding) = limits.check("one two three four five six seven eight", [], 64, 64)
    assert finding.message == (
        "the caption: the demo model does not know “one”, “two”, “three”, “four”, “five”, “six” and 2 more words"
    )


def test_what_it_knows_is_listed() -> None:
    text = limits.explain()
    assert all(word in text for word in (*COLOURS, *SHAPES, *BACKGROUNDS))


def test_a_cat_is_flagged_with_the_vocabulary_and_a_red_circle_is_not() -> None:
    findings = limits.check("a red circle on a white background", ["a red circle", "a gray British Shorthair"], 64, 64)
    messages = [f.message for f in findings]
    assert messages == [
        limits.explain(),
        "instance 2 (a gray British Shorthair): the demo model does not know “gray” (it knows “grey”), "
        "“british”, “shorthair”",
    ]
    assert findings[1].instance == 1
    assert limits.check("a red circle on a white background", ["a red circle", "an orange star"], 64, 64) == []


def test_known_words_in_an_unlearned_caption_are_flagged() -> None:
    (_, finding) = limits.check("", ["a white circle"], 64, 64)
    assert (
        finding.message
        == "instance 1 (a white circle): the demo model learned only a colour and a shape, like “a red circle”"
    )
    assert limits.check("", ["red circle", ""], 64, 64) == []  # no article is fine; no caption is another warning


def test_the_size_it_renders_at_is_said() -> None:
    (finding,) = limits.check("a red circle on a white background", ["a red circle"], 768, 512)
    assert finding.message == (
        "the demo model renders at its own scale: this 768x512 canvas becomes a 96x64 image (shown scaled to the canvas)"
    )
    assert finding.instance is None


def test_importing_it_loads_no_torch() -> None:
    code = "import sys, engine.demo.limits; sys.exit('torch' in sys.modules or 'transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False).returncode == 0
