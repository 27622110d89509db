"""The demo model renders any canvas at its own scale (about 64x64, the canvas's aspect ratio), through the
runner, so the GUI, `main.py render` and the tests all get it; the request stays the user's."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from engine.providers import load_demo_model
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from engine.runner import Runner

INSTANCES = (
    InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.6)),
    InstanceSpec("a blue star", InstanceKind.POINT, point=(0.75, 0.3)),
)


@pytest.fixture(scope="module")
def runner(untrained_demo_model: Path) -> Runner:
    return Runner(lambda _id: load_demo_model(untrained_demo_model))


def request(width: int, height: int) -> RenderRequest:
    return RenderRequest(
        prompt="a red circle and a blue star on a white background",
        width=width,
        height=height,
        seed=7,
        steps=2,
        model_id="demo",
        instances=INSTANCES,
    )


@pytest.mark.parametrize(
    ("canvas", "rendered"),
    [((512, 512), (64, 64)), ((768, 512), (96, 64)), ((512, 768), (64, 96)), ((1280, 1280), (64, 64))],
)
def test_a_large_canvas_renders_quickly_at_the_models_scale(
    runner: Runner, canvas: tuple[int, int], rendered: tuple[int, int]
) -> None:
    asked = request(*canvas)
    start = time.perf_counter()
    result = runner.render(asked)
    seconds = time.perf_counter() - start
    assert result.size == rendered and result.image.shape == (rendered[1], rendered[0], 3)
    assert result.request == asked  # the user's request, canvas and all
    assert result.notes[0] == (
        f"rendered at {rendered[0]}x{rendered[1]}, the model's own scale, for a {canvas[0]}x{canvas[1]} canvas "
        "(stored as rendered, not upscaled)"
    )
    assert seconds < 60, f"{seconds:.1f} s"  # a 1280x1280 render did not finish one step in 5 minutes


def test_it_is_the_same_image_as_asking_for_that_size(runner: Runner) -> None:
    """Same request, same image; the layout is normalised, so it carries over to the smaller render."""
    large = runner.render(request(1280, 1280))
    again = runner.render(request(1280, 1280))
    native = runner.render(request(64, 64))
    np.testing.assert_array_equal(large.image, again.image)
    np.testing.assert_array_equal(large.image, native.image)
    assert native.notes == () and native.size == (64, 64)


def test_a_model_without_a_scale_of_its_own_renders_the_canvas(untrained_demo_model: Path) -> None:
    model = dataclasses.replace(load_demo_model(untrained_demo_model), scale=None)
    assert model.render_size(128, 64) == (128, 64)
    result = Runner(lambda _id: model).render(request(128, 64))
    assert result.size == (128, 64) and not result.notes
