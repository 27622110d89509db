import dataclasses

import pytest

from desktop.history_diff import describe_changes
from desktop.sweep import parse_values
from engine.request import InstanceKind, InstanceSpec, RenderRequest


def request(*specs: InstanceSpec, seed: int = 1) -> RenderRequest:
    return RenderRequest(prompt="p", width=512, height=512, seed=seed, instances=specs)


def box(caption: str, x: float, size: float = 0.2) -> InstanceSpec:
    return InstanceSpec(caption=caption, kind=InstanceKind.BOX, box=(x, 0.1, x + size, 0.1 + size))


def test_changes_between_rounds_are_named() -> None:
    before = request(box("a cat", 0.1), box("a dog", 0.5))
    assert describe_changes(before, before) == []
    assert describe_changes(before, request(box("a cat", 0.3), box("a dog", 0.5))) == ["moved “a cat”"]
    assert describe_changes(before, request(box("a cat", 0.1, 0.4), box("a dog", 0.5))) == ["reshaped “a cat”"]
    assert describe_changes(before, request(box("a cat", 0.1), box("a fox", 0.5))) == ["“a dog” → “a fox”"]
    assert describe_changes(before, request(box("a cat", 0.1))) == ["removed “a dog”"]
    after = dataclasses.replace(request(*before.instances, box("a bird", 0.7), seed=2), steps=20)
    assert describe_changes(before, after) == ["seed 1 → 2", "added “a bird”", "steps 50 → 20"]


def test_sweep_values_are_parsed_and_checked() -> None:
    assert parse_values("0.5, 1 0.5") == [0.5, 1.0]
    with pytest.raises(ValueError, match="between 0 and 1"):
        parse_values("0.5, 2")
    with pytest.raises(ValueError, match="at least one"):
        parse_values(" , ")


def test_a_changed_model_or_lora_set_is_named() -> None:
    from engine.request import LoraWeight

    before = request(box("a cat", 0.1))
    after = dataclasses.replace(before, model_id="anime", loras=(LoraWeight("ink", 0.8), LoraWeight("grain", 0.35)))
    assert describe_changes(before, after) == [f"model {before.model_id} → anime", "LoRAs none → ink 0.8, grain 0.35"]
