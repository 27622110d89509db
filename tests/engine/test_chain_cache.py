"""Exact reuse of unchanged instance chains: a re-render after an edit equals a render from nothing."""

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from engine.chain_cache import ChainCache, tensor_digest
from engine.pipeline import InstanceDiffusionPipeline, PipelineOutput
from engine.request import InstanceKind, InstanceSpec, RenderRequest, Scheduler
from engine.sampler import RenderCancelled
from tests.engine.test_pipeline import BITMAP, POINT, SCRIBBLE

TOLERANCE = 1e-5


def box(caption: str, x0: float, y0: float, x1: float, y1: float) -> InstanceSpec:
    return InstanceSpec(caption, InstanceKind.BOX, box=(x0, y0, x1, y1))


FIVE = (
    box("a red circle", 0.05, 0.05, 0.4, 0.4),
    box("a blue square", 0.55, 0.05, 0.95, 0.45),
    box("a green triangle", 0.05, 0.55, 0.45, 0.95),
    box("a yellow star", 0.55, 0.55, 0.95, 0.95),
    box("a purple moon", 0.3, 0.3, 0.7, 0.7),
)


def scene(*instances: InstanceSpec, **overrides: object) -> RenderRequest:
    # 4 steps at mis 0.36: one multi-instance step, then the merge (the least that has chains to reuse; at 3
    # steps the latents are too small for TOLERANCE's relative bound); 64x64 is the tiny model's smallest canvas.
    settings: dict[str, object] = {"prompt": "shapes on a table", "width": 64, "height": 64, "seed": 7, "steps": 4}
    return RenderRequest(instances=instances, **{**settings, **overrides})  # type: ignore[arg-type]


def moved(spec: InstanceSpec, dx: float) -> InstanceSpec:
    assert spec.box is not None
    x0, y0, x1, y1 = spec.box
    return dataclasses.replace(spec, box=(x0 + dx, y0, x1 + dx, y1))


class Reusing:
    """The pipeline called as the runner calls it: with the chain cache."""

    def __init__(self, pipe: InstanceDiffusionPipeline) -> None:
        self.pipe = pipe

    def __call__(self, request: RenderRequest, **kwargs: Any) -> PipelineOutput:
        return self.pipe.render(request, reuse_chains=True, **kwargs)


@pytest.fixture
def fresh(pipe: InstanceDiffusionPipeline) -> Iterator[InstanceDiffusionPipeline]:
    pipe.chain_cache.clear()
    pipe.identity = "tiny"
    yield pipe
    pipe.chain_cache.clear()
    pipe.identity = ""


@pytest.fixture
def render(fresh: InstanceDiffusionPipeline) -> Reusing:
    return Reusing(fresh)


@pytest.fixture(scope="module")
def five_rendered(pipe: InstanceDiffusionPipeline) -> tuple[PipelineOutput, ChainCache]:
    """FIVE rendered once with the chain cache, and a copy of the cache as that render left it: where most tests
    start (rendered once per module, not once per test)."""
    pipe.chain_cache.clear()
    pipe.identity = "tiny"
    try:
        first = Reusing(pipe)(scene(*FIVE))
        return first, copy.deepcopy(pipe.chain_cache)
    finally:
        pipe.chain_cache.clear()
        pipe.identity = ""


@pytest.fixture
def after_five(fresh: InstanceDiffusionPipeline, five_rendered: tuple[PipelineOutput, ChainCache]) -> PipelineOutput:
    """The cache as a render of FIVE leaves it (a copy of it); that render's output."""
    first, cache = five_rendered
    fresh.chain_cache = copy.deepcopy(cache)
    return first


def from_nothing(pipe: InstanceDiffusionPipeline, request: RenderRequest) -> PipelineOutput:
    return pipe.render(request, reuse_chains=False)


def assert_same_render(pipe: InstanceDiffusionPipeline, ours: PipelineOutput, reference: PipelineOutput) -> None:
    """The decoded images (floats in [0, 1]) agree to TOLERANCE. Reused chains were computed in a
    different UNet batch than a render from nothing would put them in, so float rounding may differ in
    the last bits (the latents, up to about 20 in size here, by about 1e-6 of that)."""
    difference = (pipe.decode(ours.latents) - pipe.decode(reference.latents)).abs().max().item()
    assert difference <= TOLERANCE, f"images differ by {difference}"
    torch.testing.assert_close(
        ours.latents, reference.latents, rtol=0, atol=1e-6 * float(reference.latents.abs().max())
    )


EDITS = {
    "move": lambda five: (five[0], five[1], moved(five[2], 0.1), five[3], five[4]),
    "resize": lambda five: (*five[:4], dataclasses.replace(five[4], box=(0.2, 0.2, 0.8, 0.9))),
    "caption": lambda five: (five[0], dataclasses.replace(five[1], caption="a blue cube"), *five[2:]),
    "add": lambda five: (*five, box("an orange kite", 0.1, 0.6, 0.3, 0.9)),
    "delete": lambda five: (five[0], five[1], five[3], five[4]),
}
# Which instances of the edited scene keep their chain (the same caption and location, whatever their slot).
UNCHANGED = {
    "move": (0, 1, 3, 4),
    "resize": (0, 1, 2, 3),
    "caption": (0, 2, 3, 4),
    "add": (0, 1, 2, 3, 4),
    "delete": (0, 1, 2, 3),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_re_render_after_an_edit_reuses_the_unchanged_chains_and_equals_a_render_from_nothing(
    fresh: InstanceDiffusionPipeline, render: Reusing, after_five: PipelineOutput, edit: str
) -> None:
    assert after_five.reused == ()
    assert len(fresh.chain_cache) == len(FIVE)
    edited = scene(*EDITS[edit](FIVE))

    again = render(edited)

    assert again.reused == UNCHANGED[edit]
    assert_same_render(fresh, again, from_nothing(fresh, edited))


def test_the_same_request_twice_reuses_every_chain_and_is_the_same_image(
    fresh: InstanceDiffusionPipeline, render: Reusing, after_five: PipelineOutput
) -> None:
    second = render(scene(*FIVE))
    assert second.reused == (0, 1, 2, 3, 4)
    assert_same_render(fresh, second, after_five)


def test_mixed_location_kinds_are_reused_exactly(fresh: InstanceDiffusionPipeline, render: Reusing) -> None:
    layout = (FIVE[0], POINT, SCRIBBLE, BITMAP)
    render(scene(*layout))
    edited = scene(moved(FIVE[0], 0.2), POINT, SCRIBBLE, BITMAP)
    again = render(edited)
    assert again.reused == (1, 2, 3)
    assert_same_render(fresh, again, from_nothing(fresh, edited))


CHANGED_SETTINGS: dict[str, dict[str, object]] = {
    "seed": {"seed": 8},
    "steps": {"steps": 5},
    "mis": {"mis": 0.5},
    "negative prompt": {"negative_prompt": "blurry"},
    "guidance": {"guidance": 5.0},
    "alpha": {"alpha": 0.5},
    "scheduler": {"scheduler": Scheduler.DDIM},
    "size": {"width": 128},
}


def found_in_the_cache(
    pipe: InstanceDiffusionPipeline, request: RenderRequest, monkeypatch: pytest.MonkeyPatch
) -> list[bool]:
    """Whether each chain of `request` is found in the chain cache: what decides a render's `reused`. The render
    is stopped at its first check after the lookups (where sampling starts), so it costs only the encoding."""
    found: list[bool] = []
    lookup = pipe.chain_cache.get

    def get(key: str) -> torch.Tensor | None:
        latents = lookup(key)
        found.append(latents is not None)
        return latents

    with monkeypatch.context() as patched:
        patched.setattr(pipe.chain_cache, "get", get)
        with pytest.raises(RenderCancelled):  # a render that never looked anything up would finish: it fails here
            pipe.render(request, reuse_chains=True, should_cancel=lambda: bool(found))
    return found


def test_the_lookup_check_sees_what_a_render_reuses(
    fresh: InstanceDiffusionPipeline, after_five: PipelineOutput, monkeypatch: pytest.MonkeyPatch
) -> None:
    edited = scene(FIVE[0], FIVE[1], moved(FIVE[2], 0.1), FIVE[3], FIVE[4])  # the "move" edit
    assert found_in_the_cache(fresh, edited, monkeypatch) == [True, True, False, True, True]


def test_a_changed_setting_never_reuses(
    fresh: InstanceDiffusionPipeline, after_five: PipelineOutput, monkeypatch: pytest.MonkeyPatch
) -> None:
    for setting, change in sorted(CHANGED_SETTINGS.items()):
        assert found_in_the_cache(fresh, scene(*FIVE, **change), monkeypatch) == [False] * len(FIVE), setting


def test_another_model_never_reuses(
    fresh: InstanceDiffusionPipeline, render: Reusing, after_five: PipelineOutput
) -> None:
    fresh.identity = "other weights"
    assert render(scene(*FIVE)).reused == ()


def test_changing_a_location_kind_elsewhere_changes_every_chain(
    fresh: InstanceDiffusionPipeline, render: Reusing, after_five: PipelineOutput
) -> None:
    """The grounding drop flags follow the layout's mix of kinds, so every chain's tokens change with it."""
    edited = scene(*FIVE[:4], SCRIBBLE)
    again = render(edited)
    assert again.reused == ()
    assert_same_render(fresh, again, from_nothing(fresh, edited))


def test_a_render_that_never_merges_keeps_nothing(fresh: InstanceDiffusionPipeline, render: Reusing) -> None:
    for mis in (0.0, 1.0):
        render(scene(*FIVE, mis=mis, steps=2))  # no merge at any step count: the fewest
    assert len(fresh.chain_cache) == 0


def test_a_cancelled_render_keeps_nothing(fresh: InstanceDiffusionPipeline, render: Reusing) -> None:
    calls = iter(range(1000))
    with pytest.raises(RenderCancelled):
        render(scene(*FIVE), should_cancel=lambda: next(calls) > 40)
    assert len(fresh.chain_cache) == 0


def test_the_cache_is_bounded_in_bytes_least_recently_used_out_first() -> None:
    cache = ChainCache(max_bytes=3 * 64 * 4)
    tensors = {name: torch.full((64,), float(i)) for i, name in enumerate("abcd")}
    for name in "abc":
        cache.put(name, tensors[name])
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", tensors["d"])
    assert cache.get("b") is None
    assert [cache.get(name) is not None for name in "acd"] == [True, True, True]
    assert cache.size_bytes == 3 * 64 * 4
    cache.put("huge", torch.zeros(10_000))  # bigger than the whole cache: not kept, nothing dropped
    assert cache.get("huge") is None and len(cache) == 3


def test_a_digest_sees_every_byte_dtype_and_shape() -> None:
    base = torch.zeros(2, 3)
    changed = base.clone()
    changed[1, 2] = 1e-30
    assert tensor_digest(base) != tensor_digest(changed)
    assert tensor_digest(base) != tensor_digest(base.reshape(3, 2))
    assert tensor_digest(base) != tensor_digest(base.double())
    assert tensor_digest(base) == tensor_digest(torch.zeros(2, 3))


def test_a_plain_call_neither_reads_nor_fills_the_cache(
    fresh: InstanceDiffusionPipeline, five_rendered: tuple[PipelineOutput, ChainCache]
) -> None:
    fresh.render(scene(*FIVE))
    assert len(fresh.chain_cache) == 0
    fresh.chain_cache = copy.deepcopy(five_rendered[1])  # as a render with the cache leaves it
    assert fresh.render(scene(*FIVE)).reused == ()
