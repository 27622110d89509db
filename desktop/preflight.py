"""Pre-flight checks: what would make a render of this scene disappoint, said before anything is queued.

Pure functions over plain data (no Qt), so the canvas banner, the queue and the tests share them. What the
demo model cannot do comes from engine.demo.limits, which `main.py render` uses too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from desktop.geometry import bounds
from engine.demo import limits
from engine.request import MAX_INSTANCES, InstanceKind
from projects.scene_data import SceneData

TOKEN_LIMIT = 77  # CLIP's context, including the start and end tokens
# A box narrower than two latent cells cannot be honoured: SD's latent is 64 cells across a 512 canvas,
# so the limit is a fraction of the canvas (16 px at 512), which holds for any canvas size.
MIN_BOX_FRACTION = 2 / 64

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Warning:
    message: str
    uid: int | None = None  # the instance it is about, if any
    info: bool = False  # something to know (the size the demo model renders at), not something wrong


def preflight(
    scene: SceneData, count_tokens: TokenCounter | None = None, model_id: str | None = None
) -> list[Warning]:
    """The scene's warnings; with `model_id` (the scene's effective model), also what that model cannot do."""
    warnings: list[Warning] = []
    if len(scene.instances) > MAX_INSTANCES:
        warnings.append(
            Warning(f"{len(scene.instances)} instances: the model has {MAX_INSTANCES} slots; the rest are dropped")
        )
    if count_tokens is not None and count_tokens(scene.caption) > TOKEN_LIMIT:
        warnings.append(Warning(f"the caption is longer than {TOKEN_LIMIT} tokens; the end is cut off"))
    for slot, inst in enumerate(scene.instances, start=1):
        spec = inst.spec
        name = limits.instance_label(slot, spec.caption)
        if not spec.caption.strip():
            warnings.append(Warning(f"instance {slot} has no caption", inst.uid))
        elif count_tokens is not None and count_tokens(spec.caption) > TOKEN_LIMIT:
            warnings.append(Warning(f"{name}: the caption is longer than {TOKEN_LIMIT} tokens", inst.uid))
        if spec.kind is InstanceKind.BOX and spec.box is not None:
            x0, y0, x1, y1 = spec.box
            if min(x1 - x0, y1 - y0) < MIN_BOX_FRACTION:
                share = f"1/{round(1 / MIN_BOX_FRACTION)}"
                warnings.append(
                    Warning(f"{name}: the box is too small to be honoured (under {share} of the canvas)", inst.uid)
                )
        points = [spec.point] if spec.point is not None else list(spec.scribble or ())
        if any(not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0) for x, y in points):
            warnings.append(Warning(f"{name}: part of it lies outside the canvas", inst.uid))
        elif spec.kind is not InstanceKind.POINT and bounds(spec) == (0.0, 0.0, 0.0, 0.0):
            warnings.append(Warning(f"{name}: it covers nothing", inst.uid))
    if model_id == limits.MODEL_ID:
        warnings += demo_model_warnings(scene)
    return warnings


def demo_model_warnings(scene: SceneData) -> list[Warning]:
    """What the demo model will not do as the scene asks: the size it renders at, captions it cannot read."""
    captions = [inst.spec.caption for inst in scene.instances]
    findings = limits.check(scene.caption, captions, scene.width, scene.height)
    return [
        Warning(f.message, None if f.instance is None else scene.instances[f.instance].uid, f.info) for f in findings
    ]
