"""Hypothesis strategies for valid instances, requests and layouts, shared by the test packages."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from engine.request import MAX_INSTANCES, InstanceKind, InstanceSpec, MaskRLE, RenderRequest, Scheduler

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
point = st.tuples(unit, unit)
text = st.text(min_size=1, max_size=60).filter(lambda s: s.strip() != "")


@st.composite
def boxes(draw: st.DrawFn) -> tuple[float, float, float, float]:
    x0 = draw(st.floats(0.0, 0.9))
    y0 = draw(st.floats(0.0, 0.9))
    x1 = draw(st.floats(x0 + 0.01, 1.0))
    y1 = draw(st.floats(y0 + 0.01, 1.0))
    return (x0, y0, x1, y1)


@st.composite
def masks(draw: st.DrawFn) -> MaskRLE:
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 24))
    bits = draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    return MaskRLE.from_bitmap(np.array(bits, dtype=np.uint8).reshape(height, width))


@st.composite
def instances(draw: st.DrawFn) -> InstanceSpec:
    kind = draw(st.sampled_from(InstanceKind))
    caption = draw(text)
    if kind is InstanceKind.BOX:
        return InstanceSpec(caption, kind, box=draw(boxes()), point=draw(st.none() | point))
    if kind is InstanceKind.POINT:
        return InstanceSpec(caption, kind, point=draw(point))
    if kind is InstanceKind.SCRIBBLE:
        scribble = tuple(draw(st.lists(point, min_size=2, max_size=25)))
        return InstanceSpec(caption, kind, scribble=scribble, box=draw(st.none() | boxes()))
    polygon = draw(st.none() | st.lists(point, min_size=3, max_size=12).map(tuple))
    mask = draw(masks()) if polygon is None else draw(st.none() | masks())
    return InstanceSpec(caption, kind, polygon=polygon, mask=mask, box=draw(st.none() | boxes()))


@st.composite
def requests(draw: st.DrawFn) -> RenderRequest:
    return RenderRequest(
        prompt=draw(st.text(max_size=80)),
        negative_prompt=draw(st.text(max_size=40)),
        width=draw(st.integers(8, 512)) * 8,
        height=draw(st.integers(8, 512)) * 8,
        seed=draw(st.integers(0, 2**63 - 1)),
        steps=draw(st.integers(1, 1000)),
        guidance=draw(st.floats(0.0, 50.0)),
        alpha=draw(st.floats(0.0, 1.0)),
        mis=draw(st.floats(0.0, 1.0)),
        scheduler=draw(st.sampled_from(Scheduler)),
        model_id=draw(text),
        instances=tuple(draw(st.lists(instances(), max_size=MAX_INSTANCES))),
    )
