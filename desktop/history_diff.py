"""What changed between two renders of a scene, in words: instances added, removed, moved or re-captioned.

Instances are matched by slot first (the user edits one instance in place), so a move keeps its caption
and a replaced caption keeps its slot.
"""

from __future__ import annotations

from collections.abc import Sequence

from desktop.geometry import bounds
from engine.request import InstanceSpec, LoraWeight, RenderRequest


def describe_changes(before: RenderRequest, after: RenderRequest) -> list[str]:
    changes: list[str] = []
    if before.prompt != after.prompt:
        changes.append("caption changed")
    if before.seed != after.seed:
        changes.append(f"seed {before.seed} → {after.seed}")
    for slot in range(max(len(before.instances), len(after.instances))):
        old = before.instances[slot] if slot < len(before.instances) else None
        new = after.instances[slot] if slot < len(after.instances) else None
        if old is None and new is not None:
            changes.append(f"added {_name(new)}")
        elif new is None and old is not None:
            changes.append(f"removed {_name(old)}")
        elif old is not None and new is not None and old != new:
            if old.caption != new.caption:
                changes.append(f"{_name(old)} → {_name(new)}")
            if _location(old) != _location(new):
                changes.append(f"moved {_name(new)}" if _same_size(old, new) else f"reshaped {_name(new)}")
    for name in ("steps", "guidance", "alpha", "mis", "width", "height"):
        if getattr(before, name) != getattr(after, name):
            changes.append(f"{name} {getattr(before, name)} → {getattr(after, name)}")
    if before.model_id != after.model_id:
        changes.append(f"model {before.model_id} → {after.model_id}")
    if before.loras != after.loras:
        changes.append(f"LoRAs {describe_loras(before.loras)} → {describe_loras(after.loras)}")
    return changes


def describe_loras(loras: Sequence[LoraWeight]) -> str:
    """ "ink 0.8, grain 0.35", or "none"."""
    return ", ".join(f"{lora.name} {lora.weight:g}" for lora in loras) or "none"


def _name(spec: InstanceSpec) -> str:
    return f"“{spec.caption}”" if spec.caption else f"a {spec.kind.value}"


def _location(spec: InstanceSpec) -> tuple[object, ...]:
    return (spec.kind, spec.box, spec.point, spec.scribble, spec.polygon, spec.mask)


def _same_size(a: InstanceSpec, b: InstanceSpec) -> bool:
    ax0, ay0, ax1, ay1 = bounds(a)
    bx0, by0, bx1, by1 = bounds(b)
    return abs((ax1 - ax0) - (bx1 - bx0)) < 1e-6 and abs((ay1 - ay0) - (by1 - by0)) < 1e-6
