"""Measuring placement: render held-out world layouts and read back where each instance ended up.

For each location kind the layouts are located that way and rendered; the analyser then finds each
instance (the blob of its colour) and scores it against what was asked:
- boxes: share of instances whose blob's box has IoU >= 0.5 with the requested box;
- points: share whose blob contains the point;
- scribbles: mean share of the scribble's points inside the blob;
- masks: mean IoU of the blob with the requested mask;
plus, for every kind, the share whose shape is recognised. A renderer is any function from a
`RenderRequest` to an (H, W, 3) image, so the measurement itself can be checked on ground truth.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.demo.analysis import (
    classify_shape,
    colour_labels,
    edit_locality,
    find_blob,
    mask_iou,
    scribble_hit_rate,
)
from engine.demo.world import WorldScene, generate, on_canvas
from engine.geometry import box_iou
from engine.request import InstanceKind, RenderRequest

Renderer = Callable[[RenderRequest], npt.NDArray[np.uint8]]
Box = tuple[float, float, float, float]
HELD_OUT_SEED = 900_000  # training scenes come from other seeds

TARGETS = {
    InstanceKind.BOX: ("box IoU >= 0.5", 0.90),
    InstanceKind.POINT: ("point inside", 0.90),
    InstanceKind.SCRIBBLE: ("scribble points inside", 0.80),
    InstanceKind.MASK: ("mask IoU", 0.60),
}
SHAPE_TARGET = 0.80  # right shape, over every kind
EDIT_RATIO_TARGET = 0.25  # change outside the moved instance's boxes / inside them
CANVASES = ((96, 64), (64, 96))  # non-square canvases at the model's scale
CANVAS_TARGET = 0.80  # boxes with IoU >= 0.5 on them


@dataclass
class KindScore:
    kind: InstanceKind
    placement: list[float] = field(default_factory=list)  # per instance, per the kind's measure
    shape_right: list[bool] = field(default_factory=list)
    found: list[bool] = field(default_factory=list)

    @property
    def score(self) -> float:
        return float(np.mean(self.placement)) if self.placement else 0.0

    @property
    def shape_accuracy(self) -> float:
        return float(np.mean(self.shape_right)) if self.shape_right else 0.0


def request_for(scene: WorldScene, kind: InstanceKind, **settings: object) -> RenderRequest:
    height, width = scene.image.shape[:2]
    base: dict[str, object] = {
        "prompt": scene.caption,
        "width": width,
        "height": height,
        "seed": scene.seed,
        "model_id": "demo",
    }
    return RenderRequest(instances=scene.specs(kind), **{**base, **settings})  # type: ignore[arg-type]


def score_image(scene: WorldScene, kind: InstanceKind, image: npt.NDArray[np.uint8], into: KindScore) -> None:
    labels = colour_labels(image)
    specs = scene.specs(kind)
    for inst, spec in zip(scene.instances, specs, strict=True):
        blob = find_blob(image, inst.colour, labels)
        into.found.append(blob is not None)
        if blob is None:
            into.placement.append(0.0)
            into.shape_right.append(False)
            continue
        into.shape_right.append(classify_shape(blob) == inst.shape)
        if kind is InstanceKind.BOX:
            into.placement.append(float(box_iou(blob.box, inst.box) >= 0.5))
        elif kind is InstanceKind.POINT:
            into.placement.append(float(blob.contains(inst.centre)))
        elif kind is InstanceKind.SCRIBBLE:
            assert spec.scribble is not None
            into.placement.append(scribble_hit_rate(blob, spec.scribble))
        else:
            into.placement.append(mask_iou(blob.mask, inst.mask))


def measure(
    render: Renderer,
    layouts: int = 200,
    size: int = 64,
    kinds: tuple[InstanceKind, ...] = tuple(InstanceKind),
    **settings: object,
) -> dict[InstanceKind, KindScore]:
    """Placement scores per kind (of `kinds`) over `layouts` held-out scenes (the same scenes for every kind)."""
    scores = {kind: KindScore(kind) for kind in kinds}
    for index in range(layouts):
        scene = generate(HELD_OUT_SEED + index, size=size)
        for kind in kinds:
            score_image(scene, kind, render(request_for(scene, kind, **settings)), scores[kind])
    return scores


def measure_canvases(
    render: Renderer, layouts: int = 50, canvases: tuple[tuple[int, int], ...] = CANVASES, **settings: object
) -> dict[str, float]:
    """Box placement on non-square canvases: held-out 64x64 scenes pasted at a seeded offset along the long side."""
    scores = {}
    for width, height in canvases:
        score = KindScore(InstanceKind.BOX)
        for index in range(layouts):
            scene = generate(HELD_OUT_SEED + 20_000 + index)
            size = scene.image.shape[0]
            offset = np.random.default_rng(scene.seed).integers(0, max(width, height) - size + 1)
            left, top = (int(offset), 0) if width > height else (0, int(offset))
            wide = on_canvas(scene, width, height, left, top)
            score_image(wide, InstanceKind.BOX, render(request_for(wide, InstanceKind.BOX, **settings)), score)
        scores[f"{width}x{height}"] = score.score
    return scores


def measure_edit_locality(
    render: Renderer, edits: int = 20, size: int = 64, **settings: object
) -> tuple[float, float]:
    """Move one instance of a scene (same seed): mean change outside the old and new boxes vs inside them."""
    outside, inside = [], []
    for index in range(edits):
        scene = generate(HELD_OUT_SEED + 10_000 + index, size=size)
        before = request_for(scene, InstanceKind.BOX, **settings)
        moved = _moved(scene, before)
        if moved is None:
            continue
        request, old_box, new_box = moved
        out_change, in_change = edit_locality(render(before), render(request), [old_box, new_box])
        outside.append(out_change)
        inside.append(in_change)
    return float(np.mean(outside)), float(np.mean(inside))


def _moved(scene: WorldScene, request: RenderRequest) -> tuple[RenderRequest, Box, Box] | None:
    """The request with its first instance's box shifted by a quarter of the canvas, if it fits."""
    spec = request.instances[0]
    assert spec.box is not None
    x0, y0, x1, y1 = spec.box
    dx = 0.25 if x1 + 0.25 <= 1 else -0.25
    if x0 + dx < 0:
        return None
    new_box: Box = (x0 + dx, y0, x1 + dx, y1)
    moved = dataclasses.replace(spec, box=new_box)
    return dataclasses.replace(request, instances=(moved, *request.instances[1:])), spec.box, new_box


def evaluation_report(
    render: Renderer, layouts: int = 200, steps: int = 20, edits: int = 20, canvas_layouts: int = 50
) -> dict[str, Any]:
    """Placement with the multi-instance sampler on (the default 0.36) and off, the right-shape share, edit
    locality and boxes on non-square canvases (the last two at the default sampler settings)."""
    report: dict[str, Any] = {"layouts": layouts, "steps": steps, "held_out_seed": HELD_OUT_SEED}
    for label, mis in (("mis_on", 0.36), ("mis_off", 0.0)):
        scores = measure(render, layouts=layouts, steps=steps, mis=mis)
        report[label] = {
            kind.value: {
                "measure": name,
                "score": round(scores[kind].score, 4),
                "target": target,
                "met": scores[kind].score >= target,
                "shape_ok": round(scores[kind].shape_accuracy, 4),
                "found": round(float(np.mean(scores[kind].found)), 4),
                "instances": len(scores[kind].placement),
            }
            for kind, (name, target) in TARGETS.items()
        }
        shape = float(np.mean([scores[kind].shape_accuracy for kind in TARGETS]))
        report[label]["shape"] = {"score": round(shape, 4), "target": SHAPE_TARGET, "met": shape >= SHAPE_TARGET}
    outside, inside = measure_edit_locality(render, edits=edits, steps=steps)
    ratio = outside / max(inside, 1e-9)
    report["edit_locality"] = {
        "edits": edits,
        "outside": round(outside, 4),
        "inside": round(inside, 4),
        "ratio": round(ratio, 4),
        "target": EDIT_RATIO_TARGET,
        "met": ratio <= EDIT_RATIO_TARGET,
    }
    if not canvas_layouts:
        return report
    canvases = measure_canvases(render, layouts=canvas_layouts, steps=steps)
    report["canvases"] = {
        "layouts": canvas_layouts,
        "target": CANVAS_TARGET,
        **{name: {"score": round(score, 4), "met": score >= CANVAS_TARGET} for name, score in canvases.items()},
    }
    return report


def report_table(report: dict[str, Any]) -> str:
    lines = [
        f"placement over {report['layouts']} held-out layouts (seed {report['held_out_seed']}), {report['steps']} steps",
        f"{'kind':<9} {'measure':<24} {'target':>6} {'MIS on':>7} {'MIS off':>8} {'met':>4} "
        f"{'shape ok':>9} {'found':>6} {'n':>5}",
    ]
    for kind in TARGETS:
        on, off = report["mis_on"][kind.value], report["mis_off"][kind.value]
        lines.append(
            f"{kind.value:<9} {on['measure']:<24} {on['target']:>6.2f} {on['score']:>7.3f} {off['score']:>8.3f} "
            f"{'yes' if on['met'] else 'no':>4} {on['shape_ok']:>9.3f} {on['found']:>6.3f} {on['instances']:>5}"
        )
    if "shape" in report["mis_on"]:
        on, off = report["mis_on"]["shape"], report["mis_off"]["shape"]
        lines.append(
            f"{'all':<9} {'right shape':<24} {on['target']:>6.2f} {on['score']:>7.3f} {off['score']:>8.3f} "
            f"{'yes' if on['met'] else 'no':>4}"
        )
    edit = report["edit_locality"]
    lines.append(
        f"edit locality over {edit['edits']} moves: mean change {edit['outside']:.2f} outside the old and new boxes "
        f"vs {edit['inside']:.2f} inside (ratio {edit['ratio']:.3f}, target <= {EDIT_RATIO_TARGET})"
    )
    for name, canvas in report.get("canvases", {}).items():
        if isinstance(canvas, dict):
            lines.append(
                f"boxes on {name} canvases ({report['canvases']['layouts']} layouts): IoU >= 0.5 for "
                f"{canvas['score']:.3f} (target {CANVAS_TARGET}, {'met' if canvas['met'] else 'not met'})"
            )
    if "render_seconds" in report:
        lines.append(f"render time: {report['render_seconds']}")
    return "\n".join(lines)
