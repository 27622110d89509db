"""Model-ready instance inputs, placed into UniFusion's fixed slots (batch of one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.layout_inputs import location_inputs
from engine.models.unifusion import UniFusionConfig
from engine.request import InstanceSpec


@dataclass(frozen=True)
class InstanceTensors:
    """One instance as the position net consumes it; absent locations are zeros (and `seg` None)."""

    text: torch.Tensor  # (text_dim,) caption feature
    box: torch.Tensor  # (4,) normalised x0, y0, x1, y1
    point: torch.Tensor  # (2,) normalised; the box centre when the user gave no point
    scribble: torch.Tensor  # (2 * scribble_points,)
    polygon: torch.Tensor  # (2 * polygon_points,)
    seg: torch.Tensor | None = None  # (H, W) binary mask


def instance_tensors(spec: InstanceSpec, text: torch.Tensor, config: UniFusionConfig) -> InstanceTensors:
    """An instance's geometry as the position net's inputs, next to its caption feature (same device, dtype)."""
    loc = location_inputs(
        spec, scribble_points=config.scribble_points, polygon_points=config.polygon_points, seg_side=config.seg_size
    )

    def like_text(value: torch.Tensor) -> torch.Tensor:
        return value.to(text.device, text.dtype)

    seg = None if loc.seg is None else like_text(loc.seg)
    return InstanceTensors(
        text, like_text(loc.box), like_text(loc.point), like_text(loc.scribble), like_text(loc.polygon), seg
    )


def slot_grounding(
    instances: Sequence[InstanceTensors], config: UniFusionConfig, seg_side: int | None = None
) -> dict[str, torch.Tensor]:
    """Grounding for one sample: instance i in slot i, zeros in every other slot (as the official code)."""
    if len(instances) > config.max_objs:
        raise ValueError(f"{len(instances)} instances; the model has {config.max_objs} slots")
    like = instances[0].text if instances else torch.zeros(config.text_dim)
    grounding = null_grounding(config, like.dtype, like.device, seg_side)
    for slot, inst in enumerate(instances):
        grounding["masks"][0, slot] = 1
        grounding["positive_embeddings"][0, slot] = inst.text
        grounding["boxes"][0, slot] = inst.box
        grounding["points"][0, slot] = inst.point
        grounding["scribbles"][0, slot] = inst.scribble
        grounding["polygons"][0, slot] = inst.polygon
        if inst.seg is not None:
            seg = inst.seg.to(grounding["segs"].dtype)
            if seg.shape != grounding["segs"].shape[-2:]:
                seg = torch.nn.functional.interpolate(
                    seg[None, None], size=grounding["segs"].shape[-2:], mode="nearest"
                )[0, 0]
            grounding["segs"][0, slot] = seg
    return grounding


def null_grounding(
    config: UniFusionConfig,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    seg_side: int | None = None,
) -> dict[str, torch.Tensor]:
    """All-zero grounding: what the unconditional branch gets (the learned null features take over)."""
    n, side = config.max_objs, seg_side or config.seg_size

    def zeros(*shape: int) -> torch.Tensor:
        return torch.zeros(1, n, *shape, dtype=dtype, device=device)

    return {
        "boxes": zeros(4),
        "masks": torch.zeros(1, n, dtype=dtype, device=device),
        "positive_embeddings": zeros(config.text_dim),
        "scribbles": zeros(2 * config.scribble_points),
        "polygons": zeros(2 * config.polygon_points),
        "segs": zeros(side, side),
        "points": zeros(2),
    }
