import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.geometry import bitmap_bounding_box
from engine.request import (
    MAX_INSTANCES,
    MAX_LORA_WEIGHT,
    MAX_LORAS,
    InstanceKind,
    InstanceSpec,
    LoraWeight,
    MaskRLE,
    RenderRequest,
    RequestValidationError,
    Scheduler,
)
from tests.conftest import REPO_ROOT
from tests.layouts import requests


def box(
    caption: str = "a red circle", coords: tuple[float, float, float, float] = (0.1, 0.2, 0.5, 0.6)
) -> InstanceSpec:
    return InstanceSpec(caption, InstanceKind.BOX, box=coords)


def every_kind() -> tuple[InstanceSpec, ...]:
    bitmap = np.zeros((16, 16), np.uint8)
    bitmap[4:9, 3:12] = 1
    return (
        box(),
        InstanceSpec("a star", InstanceKind.POINT, point=(0.25, 0.75)),
        InstanceSpec("a snake", InstanceKind.SCRIBBLE, scribble=((0.1, 0.1), (0.2, 0.3), (0.3, 0.2))),
        InstanceSpec("a kite", InstanceKind.MASK, polygon=((0.5, 0.5), (0.9, 0.5), (0.7, 0.9))),
        InstanceSpec("a cloud", InstanceKind.MASK, mask=MaskRLE.from_bitmap(bitmap), box=(0.2, 0.25, 0.75, 0.5625)),
    )


def errors_of(**kwargs: object) -> list[str]:
    with pytest.raises(RequestValidationError) as info:
        RenderRequest(**{"prompt": "a scene", **kwargs})  # type: ignore[arg-type]
    return [p.message for p in info.value.problems]


# --- round trip -------------------------------------------------------------------------------


def test_request_with_every_kind_round_trips_through_json_exactly() -> None:
    request = RenderRequest(
        prompt="shapes on a table",
        negative_prompt="blurry",
        width=768,
        height=512,
        seed=1234567890123,
        steps=30,
        guidance=6.5,
        alpha=0.8,
        mis=0.2,
        scheduler=Scheduler.DDIM,
        model_id="sd15",
        instances=every_kind(),
    )
    text = request.to_json()
    again = RenderRequest.from_json(text)
    assert again == request
    assert again.to_json() == text
    assert json.loads(text)["version"] == 1


@given(requests())
def test_any_valid_request_round_trips_exactly(request: RenderRequest) -> None:
    assert RenderRequest.from_json(request.to_json()) == request


def test_defaults_are_the_official_ones() -> None:
    request = RenderRequest(prompt="x")
    assert (request.steps, request.guidance, request.alpha, request.mis) == (50, 7.5, 0.75, 0.36)
    assert request.scheduler is Scheduler.PLMS


def test_request_module_imports_no_torch() -> None:
    code = "import sys, engine.request; sys.exit('torch' in sys.modules or 'PySide6' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT).returncode == 0


# --- validation: every message names the instance and the field --------------------------------


def test_more_than_thirty_instances_is_refused() -> None:
    (message,) = errors_of(instances=tuple(box(f"thing {i}") for i in range(MAX_INSTANCES + 1)))
    assert "31 instances" in message and "at most 30" in message
    RenderRequest(prompt="ok", instances=tuple(box(f"thing {i}") for i in range(MAX_INSTANCES)))


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        (
            box(coords=(0.1, 0.2, float("nan"), 0.6)),
            "instance 1 ('a red circle'): box: coordinate nan is not a finite",
        ),
        (box(coords=(0.1, 0.2, 0.5, float("inf"))), "box: coordinate inf is not a finite"),
        (box(coords=(0.1, 0.2, 1.2, 0.6)), "box: coordinate 1.2 is outside the canvas"),
        (box(coords=(-0.1, 0.2, 0.5, 0.6)), "box: coordinate -0.1 is outside the canvas"),
        (box(coords=(0.5, 0.2, 0.5, 0.6)), "box: the box has no area"),
        (box(coords=(0.6, 0.2, 0.5, 0.6)), "box: the box has no area"),
        (box(caption="   "), "instance 1: caption: the caption is empty"),
        (InstanceSpec("a snake", InstanceKind.SCRIBBLE, scribble=((0.1, 0.1),)), "scribble: needs 2 to"),
        (InstanceSpec("a kite", InstanceKind.MASK, polygon=((0.1, 0.1), (0.2, 0.2))), "polygon: needs 3 to"),
        (InstanceSpec("a star", InstanceKind.POINT, point=(0.5, 1.5)), "point: coordinate 1.5 is outside"),
        (InstanceSpec("a star", InstanceKind.POINT), "kind: a point instance needs a point"),
        (InstanceSpec("a star", InstanceKind.BOX, point=(0.5, 0.5)), "kind: a box instance needs a box"),
        (InstanceSpec("a blob", InstanceKind.MASK, box=(0.1, 0.1, 0.2, 0.2)), "needs a polygon or a mask bitmap"),
    ],
)
def test_bad_instance_is_named_with_its_field(instance: InstanceSpec, expected: str) -> None:
    messages = errors_of(instances=(instance,))
    assert any(expected in m for m in messages), messages


def test_problem_names_the_slot_of_the_bad_instance() -> None:
    with pytest.raises(RequestValidationError) as info:
        RenderRequest(prompt="x", instances=(box("fine"), box("bad one", (0.3, 0.3, 0.3, 0.9))))
    (problem,) = info.value.problems
    assert problem.field == "instances[1].box"
    assert problem.message.startswith("instance 2 ('bad one'): box:")


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("width", 100, "width: 100 is not a multiple of 8"),
        ("height", 8192, "height: 8192 is not a multiple of 8 between 64 and 4096"),
        ("width", 56, "width: 56"),
        ("width", True, "width: True"),
        ("seed", -1, "seed: -1 is not an integer"),
        ("seed", 2**63, "seed:"),
        ("steps", 0, "steps: 0"),
        ("guidance", float("nan"), "guidance: nan"),
        ("alpha", 1.5, "alpha: 1.5 is not a number between 0 and 1"),
        ("mis", -0.1, "mis: -0.1"),
        ("scheduler", "euler", "scheduler: unknown scheduler 'euler'"),
        ("model_id", " ", "model_id: the model id is empty"),
    ],
)
def test_bad_parameter_is_named(field: str, value: object, expected: str) -> None:
    messages = errors_of(**{field: value})
    assert any(expected in m for m in messages), messages


def test_all_problems_are_reported_together() -> None:
    messages = errors_of(width=100, alpha=2.0, instances=(box(caption=""),))
    assert len(messages) == 3


# --- reading untrusted JSON -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(width=512.0), "width must be an integer"),
        (lambda d: d.update(seed="7"), "seed must be an integer"),
        (lambda d: d.update(prompt=None), "prompt must be text"),
        (lambda d: d.update(surprise=1), "unknown fields: surprise"),
        (lambda d: d.update(version=99), "newer than this app understands"),
        (lambda d: d.update(instances={"a": 1}), "instances must be a list"),
        (lambda d: d["instances"][0].update(kind="blob"), "instances[0].kind 'blob' is not one of"),
        (lambda d: d["instances"][0].update(box=[0.1, 0.2, 0.3]), "instances[0].box must have 4 values"),
        (lambda d: d["instances"][0].update(box=[0.1, 0.2, 0.3, "x"]), "instances[0].box must be a finite number"),
        (
            lambda d: d["instances"][0].update(box=[0.1, 0.2, 0.05, 0.6]),
            "instance 1 ('a red circle'): box: the box has no area",
        ),
        (
            lambda d: d["instances"][0].update(mask={"size": [4, 4], "counts": 5}),
            "instances[0].mask.counts must be text, got int",
        ),
    ],
)
def test_malformed_request_json_is_refused_with_the_field(mutate: object, expected: str) -> None:
    data = RenderRequest(prompt="x", instances=(box(),)).to_dict()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(RequestValidationError) as info:
        RenderRequest.from_json(json.dumps(data))
    assert expected in str(info.value)


@pytest.mark.parametrize("text", ["{", "[]", '"x"', '{"prompt": NaN}', "[" * 100_000])
def test_request_json_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(RequestValidationError):
        RenderRequest.from_json(text)


# --- masks ------------------------------------------------------------------------------------


def test_mask_bitmap_round_trips_through_pycocotools() -> None:
    bitmap = (np.random.default_rng(0).random((33, 47)) > 0.6).astype(np.uint8)
    rle = MaskRLE.from_bitmap(bitmap)
    assert (rle.height, rle.width) == (33, 47)
    np.testing.assert_array_equal(rle.decode(), bitmap)


@pytest.mark.parametrize(
    "counts",
    [
        "0",  # runs cover fewer pixels than the size says: pycocotools would return uninitialised memory
        "1",
        "Q[a19]?:L4M3N3",  # runs overflow the 4x4 mask
        "zzzz",
    ],
)
def test_rle_that_does_not_describe_its_size_is_refused(counts: str) -> None:
    with pytest.raises(RequestValidationError, match=r"does not decode|outside COCO's alphabet"):
        MaskRLE(4, 4, counts).decode()


@pytest.mark.parametrize(("height", "width", "counts"), [(0, 4, "8"), (4, 100_000, "8"), (4, 4, ""), (4, 4, "ab cd")])
def test_structurally_bad_mask_is_refused_on_construction(height: int, width: int, counts: str) -> None:
    with pytest.raises(RequestValidationError):
        MaskRLE(height, width, counts)


def test_mask_bounding_box_is_normalised_and_covers_the_pixels_whole() -> None:
    bitmap = np.zeros((20, 10), dtype=np.uint8)
    bitmap[4:9, 3] = 1  # column 3, rows 4 to 8
    bitmap[6, 7] = 1
    assert MaskRLE.from_bitmap(bitmap).bounding_box() == (3 / 10, 4 / 20, 8 / 10, 9 / 20)
    full = MaskRLE.from_bitmap(np.ones((3, 5), dtype=np.uint8))
    assert full.bounding_box() == (0.0, 0.0, 1.0, 1.0)


def test_an_empty_mask_has_no_bounding_box() -> None:
    assert MaskRLE.from_bitmap(np.zeros((4, 6), dtype=np.uint8)).bounding_box() is None


def test_mask_bounding_box_matches_pycocotools_on_random_masks() -> None:
    """pycocotools' own box (pixels x, y, w, h) from the runs, normalised, is the same box."""
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(1)
    for _ in range(20):
        height, width = (int(v) for v in rng.integers(1, 40, size=2))
        bitmap = np.zeros((height, width), dtype=np.uint8)
        y0, x0 = int(rng.integers(height)), int(rng.integers(width))
        bitmap[y0 : y0 + int(rng.integers(1, 10)), x0 : x0 + int(rng.integers(1, 10))] = 1
        rle = MaskRLE.from_bitmap(bitmap)
        coco = {"size": [height, width], "counts": rle.counts.encode("ascii")}
        x, y, w, h = (float(v) for v in coco_mask.toBbox(coco))
        assert rle.bounding_box() == (x / width, y / height, (x + w) / width, (y + h) / height)


def test_bounding_box_of_a_mask_that_does_not_decode_is_refused() -> None:
    with pytest.raises(RequestValidationError, match="does not decode"):
        MaskRLE(4, 4, "1").bounding_box()


def test_bitmap_bounding_box_takes_any_2d_array() -> None:
    bitmap = np.zeros((8, 4), dtype=bool)
    bitmap[2, 1] = True
    assert bitmap_bounding_box(bitmap) == (1 / 4, 2 / 8, 2 / 4, 3 / 8)
    assert all(type(v) is float for v in bitmap_bounding_box(bitmap) or ())
    assert bitmap_bounding_box(np.zeros((2, 2))) is None
    with pytest.raises(ValueError, match="2-D"):
        bitmap_bounding_box(np.ones(3))


def test_names_moved_out_of_the_request_module_are_still_importable_from_it() -> None:
    import engine.geometry
    import engine.request
    import engine.validation

    assert engine.request.MaskRLE is engine.geometry.MaskRLE
    assert engine.request.MAX_MASK_SIDE == engine.geometry.MAX_MASK_SIDE
    assert engine.request.Problem is engine.validation.Problem
    assert engine.request.RequestValidationError is engine.validation.RequestValidationError


# --- LoRAs ------------------------------------------------------------------------------------

lora_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,20}", fullmatch=True)
lora_weights = st.floats(-MAX_LORA_WEIGHT, MAX_LORA_WEIGHT)


@given(requests(), st.lists(st.tuples(lora_names, lora_weights), max_size=MAX_LORAS, unique_by=lambda lw: lw[0]))
def test_any_request_with_loras_round_trips_exactly(request: RenderRequest, loras: list[tuple[str, float]]) -> None:
    with_loras = dataclasses.replace(request, loras=tuple(LoraWeight(n, w) for n, w in loras))
    text = with_loras.to_json()
    again = RenderRequest.from_json(text)
    assert again == with_loras
    assert again.to_json() == text


def test_a_request_without_loras_serialises_as_older_versions_wrote_it() -> None:
    # What a stored job or PNG of an earlier version holds: no "loras" key, and it must read back the same.
    old = (
        '{"alpha": 0.75, "guidance": 7.5, "height": 512, "instances": [], "mis": 0.36, "model_id": "demo", '
        '"negative_prompt": "", "prompt": "a scene", "scheduler": "plms", "seed": 0, "steps": 50, '
        '"version": 1, "width": 512}'
    )
    request = RenderRequest.from_json(old)
    assert request.loras == ()
    assert request.to_json() == old


def test_a_request_with_loras_names_them_in_its_json() -> None:
    request = RenderRequest(prompt="a scene", loras=(LoraWeight("ink style", 0.7), LoraWeight("detail", -1)))
    assert json.loads(request.to_json())["loras"] == [
        {"name": "ink style", "weight": 0.7},
        {"name": "detail", "weight": -1},
    ]


@pytest.mark.parametrize(
    ("loras", "expected"),
    [
        ((LoraWeight("", 1.0),), "loras[0]: LoRA name '' must be 1-64 letters"),
        ((LoraWeight("a/b", 1.0),), "loras[0]: LoRA name 'a/b' must be"),
        ((LoraWeight(" lead", 1.0),), "loras[0]: LoRA name ' lead' must be"),
        ((LoraWeight("x" * 65, 1.0),), "must be 1-64 letters"),
        ((LoraWeight("a", 1.0), LoraWeight("a", 0.5)), "loras[1]: LoRA 'a' is listed twice"),
        ((LoraWeight("a", float("nan")),), "loras[0]: LoRA 'a': weight nan is not a number between -4 and 4"),
        ((LoraWeight("a", float("inf")),), "weight inf is not a number"),
        ((LoraWeight("a", 4.5),), "weight 4.5 is not a number between -4 and 4"),
        ((LoraWeight("a", -4.01),), "weight -4.01 is not a number"),
        ((LoraWeight("a", True),), "weight True is not a number"),
        (tuple(LoraWeight(f"l{i}", 1.0) for i in range(MAX_LORAS + 1)), "loras: 9 LoRAs; at most 8"),
        ([LoraWeight("a", 1.0)], "loras: must be a tuple of LoraWeight"),
        (("a",), "loras[0]: must be a LoraWeight"),
    ],
)
def test_bad_loras_are_refused_naming_the_entry(loras: object, expected: str) -> None:
    messages = errors_of(loras=loras)
    assert len(messages) == 1 and expected in messages[0], messages
    assert "\n" not in messages[0]


@pytest.mark.parametrize(
    ("loras", "expected"),
    [
        ("x", "loras"),
        ([{"name": "a"}], "loras[0].weight must be a finite number"),
        ([{"name": "a", "weight": "1"}], "loras[0].weight"),
        ([{"weight": 1}], "loras[0].name"),
        ([{"name": "a", "weight": 1, "scale": 2}], "scale"),
        ([["a", 1]], "loras[0]"),
        ([{"name": "a", "weight": 1}] * 2, "listed twice"),
        ([{"name": f"l{i}", "weight": 1} for i in range(9)], "at most 8"),
    ],
)
def test_malformed_loras_in_json_are_refused(loras: object, expected: str) -> None:
    data = json.loads(RenderRequest(prompt="a scene").to_json()) | {"loras": loras}
    with pytest.raises(RequestValidationError) as info:
        RenderRequest.from_json(json.dumps(data))
    assert expected in str(info.value)
