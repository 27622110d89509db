import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycocotools import mask as coco_mask

from engine.request import InstanceKind, InstanceSpec, MaskRLE
from projects.errors import LayoutFormatError
from projects.official_json import (
    MAX_FILE_BYTES,
    parse_official_bytes,
    parse_official_layout,
    read_official_json,
    to_official_dict,
    write_official_json,
)
from projects.scenes import SceneLayout
from tests.conftest import OFFICIAL_DEMOS
from tests.layouts import instances

DEMOS = sorted(OFFICIAL_DEMOS.glob("*.json"))


def test_all_twelve_official_demos_are_here() -> None:
    assert len(DEMOS) == 12


def expected_kind(anno: dict[str, Any]) -> InstanceKind:
    """The kind the importer must choose, read straight off the file."""
    if anno.get("mask"):
        return InstanceKind.MASK
    bbox = anno.get("bbox")
    if bbox and bbox[2] > 0 and bbox[3] > 0:
        return InstanceKind.BOX
    return InstanceKind.POINT


def clip(v: float) -> float:
    return min(1.0, max(0.0, v))


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_official_demo_imports_with_matching_instances_kinds_and_geometry(path: Path) -> None:
    data = json.loads(path.read_text())
    width, height = data["width"], data["height"]
    imported = read_official_json(path)
    layout = imported.layout
    assert (layout.name, layout.caption, layout.width, layout.height) == (path.stem, data["caption"], width, height)
    assert len(layout.instances) == len(data["annos"])
    for anno, spec in zip(data["annos"], layout.instances, strict=True):
        assert spec.caption == anno["caption"]
        assert spec.kind is expected_kind(anno)
        assert spec.problems() == []
        x, y, w, h = anno.get("bbox") or (0, 0, 0, 0)
        if w > 0 and h > 0:
            expected_box = (clip(x / width), clip(y / height), clip((x + w) / width), clip((y + h) / height))
            assert spec.box == pytest.approx(expected_box)
        if "point" in anno:
            assert spec.point == pytest.approx((anno["point"][0] / width, anno["point"][1] / height))
        elif spec.kind is InstanceKind.POINT:  # a zero-area box stands in its own place
            assert spec.point == pytest.approx((clip(x / width), clip(y / height)))
        if anno.get("mask"):
            assert spec.mask is not None
            official = coco_mask.decode({"size": anno["mask"]["size"], "counts": anno["mask"]["counts"].encode()})
            np.testing.assert_array_equal(spec.mask.decode(), official)


def test_demo_quirks_are_reported_as_warnings() -> None:
    corgi = read_official_json(OFFICIAL_DEMOS / "demo_corgi_kitchen.json")
    assert any("'kitchen counter'" in w and "clipped" in w for w in corgi.warnings)
    rose = read_official_json(OFFICIAL_DEMOS / "demo_rose_garden_painting.json")
    assert rose.warnings == ("instance 28 ('an oil painting of a coastal flower gard') bbox has no area; "
                             "imported as a point at its position",)  # fmt: skip
    assert rose.layout.instances[27].point == (0.0, 1.0)
    palm = read_official_json(OFFICIAL_DEMOS / "demo_palm_point.json")
    assert {spec.kind for spec in palm.layout.instances} == {InstanceKind.POINT}
    assert read_official_json(OFFICIAL_DEMOS / "demo_cat_dog_robin.json").warnings == ()


@pytest.mark.parametrize("path", DEMOS, ids=lambda p: p.stem)
def test_official_demo_export_then_import_round_trips(path: Path, tmp_path: Path) -> None:
    layout = read_official_json(path).layout
    out = tmp_path / "out.json"
    write_official_json(layout, out)
    again = read_official_json(out)
    assert again.warnings == ()
    assert_same_layout(again.layout, layout)


def assert_same_layout(actual: SceneLayout, expected: SceneLayout) -> None:
    assert (actual.caption, actual.width, actual.height) == (expected.caption, expected.width, expected.height)
    assert len(actual.instances) == len(expected.instances)
    for got, want in zip(actual.instances, expected.instances, strict=True):
        assert (got.caption, got.kind) == (want.caption, want.kind)
        assert want.mask == got.mask
        for name in ("box", "point"):
            value = getattr(want, name)
            if value is not _ANY_BOX:
                assert getattr(got, name) == (None if value is None else pytest.approx(value, abs=1e-9))
        for name in ("scribble", "polygon"):
            points = getattr(want, name)
            if points is None:
                assert getattr(got, name) is None
            else:
                assert np.allclose(getattr(got, name), points, atol=1e-9)


@given(
    st.lists(instances(), max_size=8),
    st.sampled_from([(512, 512), (768, 512), (64, 128), (1024, 576)]),
    st.text(max_size=50),
)
def test_any_valid_layout_round_trips(specs: list[InstanceSpec], size: tuple[int, int], caption: str) -> None:
    layout = SceneLayout("s", caption, size[0], size[1], tuple(specs))
    exported = json.loads(json.dumps(to_official_dict(layout)))
    again = parse_official_layout(exported, "generated.json", "s").layout
    assert_same_layout(again, SceneLayout("s", caption, size[0], size[1], tuple(map(completed_by_export, specs))))
    for got in again.instances:
        if got.kind is InstanceKind.MASK:  # the official format always carries a bitmap
            assert got.mask is not None


def completed_by_export(spec: InstanceSpec) -> InstanceSpec:
    """What the official format adds to a mask instance: a bitmap (polygons are rasterised) and its box.

    The bitmap of a polygon is pycocotools' rasterisation at canvas size; it is compared as produced.
    """
    if spec.kind is not InstanceKind.MASK:
        return spec
    mask = spec.mask
    if mask is None:
        box = spec.box if spec.box is not None else _ANY_BOX
        return dataclasses.replace(spec, mask=_SAME_AS_EXPORTED, box=box)  # type: ignore[arg-type]
    return dataclasses.replace(spec, box=spec.box if spec.box is not None else _bitmap_box(mask))


def _bitmap_box(mask: MaskRLE) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask.decode())
    if len(xs) == 0:
        return None
    return (xs.min() / mask.width, ys.min() / mask.height, (xs.max() + 1) / mask.width, (ys.max() + 1) / mask.height)


class _AnyMask:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaskRLE)


_SAME_AS_EXPORTED = _AnyMask()
_ANY_BOX = object()  # the box of a rasterised polygon, whatever pycocotools made of it


# --- malformed and hostile input --------------------------------------------------------------

GOOD = {"caption": "c", "width": 512, "height": 512, "annos": [{"caption": "a cat", "bbox": [10, 10, 100, 100]}]}


def bad(mutate: Any) -> dict[str, Any]:
    data = json.loads(json.dumps(GOOD))
    mutate(data)
    return data


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2], "the top level must be an object, got a list"),
        (bad(lambda d: d.pop("annos")), "missing key 'annos'"),
        (bad(lambda d: d.update(caption=5)), "caption must be text, got a number"),
        (bad(lambda d: d.update(width="512")), "width must be a number, got text"),
        (bad(lambda d: d.update(width=True)), "width must be a number, got true/false"),
        (bad(lambda d: d.update(height=0)), "height must be a whole number of pixels"),
        (bad(lambda d: d.update(height=10**9)), "height must be a whole number of pixels"),
        (bad(lambda d: d.update(width=511.5)), "width must be a whole number"),
        (bad(lambda d: d.update(annos={})), "'annos' must be a list, got an object"),
        (bad(lambda d: d.update(annos=[GOOD["annos"][0]] * 31)), "31 instances; InstanceDiffusion takes at most 30"),
        (bad(lambda d: d["annos"].append("cat")), "instance 2 must be an object, got text"),
        (bad(lambda d: d["annos"][0].pop("caption")), "instance 1 has no 'caption'"),
        (bad(lambda d: d["annos"][0].update(bbox=[1, 2, 3])), "instance 1 ('a cat') bbox must be a list of 4 numbers"),
        (bad(lambda d: d["annos"][0].update(bbox=[1, 2, -3, 4])), "negative width or height"),
        (bad(lambda d: d["annos"][0].update(bbox=[1, 2, None, 4])), "bbox must be a number, got null"),
        (bad(lambda d: d["annos"][0].pop("bbox")), "instance 1 ('a cat') has no location"),
        (bad(lambda d: d["annos"][0].update(point=[1])), "point must be a list of 2 numbers"),
        (bad(lambda d: d["annos"][0].update(scribble=[1, 2, 3])), "scribble has an odd number of coordinates"),
        (bad(lambda d: d["annos"][0].update(scribble=[1, 2])), "scribble needs at least 2 points"),
        (bad(lambda d: d["annos"][0].update(mask={"size": [4, 4]})), "mask must be a COCO RLE object"),
        (bad(lambda d: d["annos"][0].update(mask={"size": [4, 4], "counts": "0"})), "does not decode to a 4x4 bitmap"),
        (
            bad(lambda d: d["annos"][0].update(mask={"size": [4, 4], "counts": "zz"})),
            "mask: the RLE counts contain characters outside",
        ),
        (
            bad(lambda d: d["annos"][0].update(mask={"size": [4, 4], "counts": "Q[a1"})),
            "('a cat') mask: the RLE does not decode",
        ),
        (bad(lambda d: d["annos"][0].update(mask={"size": [4, 4], "counts": [3, 2]})), "do not add up to a 4x4 mask"),
        (bad(lambda d: d["annos"][0].update(mask={"size": [4, 4], "counts": {"a": 1}})), "must be an RLE string"),
    ],
)
def test_malformed_layout_raises_one_typed_error_naming_file_and_problem(data: Any, expected: str) -> None:
    with pytest.raises(LayoutFormatError) as info:
        parse_official_layout(data, "scene.json", "scene")
    assert str(info.value).startswith("scene.json: ")
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"caption": "c", "width": NaN, "height": 512, "annos": []}', "NaN is not a number JSON allows"),
        (b'{"caption": "c", "width": Infinity, "height": 512, "annos": []}', "Infinity"),
        (b'{"caption": "c", "width": 1e999, "height": 512, "annos": []}', "width must be finite"),
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"caption": "c"', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_hostile_bytes_are_refused(raw: bytes, expected: str) -> None:
    with pytest.raises(LayoutFormatError, match=r"^layout\.json: ") as info:
        parse_official_bytes(raw, "layout.json", "x")
    assert expected in str(info.value)


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(LayoutFormatError, match=r"huge.json: file is 33,554,433 bytes"):
        read_official_json(path)


def test_missing_file_is_a_layout_error(tmp_path: Path) -> None:
    with pytest.raises(LayoutFormatError, match=r"gone\.json: cannot be read"):
        read_official_json(tmp_path / "gone.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
anno_junk = st.dictionaries(
    st.sampled_from(["caption", "bbox", "mask", "point", "scribble", "polygon", "category_name"]), json_values
)


@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"caption": json_values, "width": json_values, "height": json_values, "annos": json_values}
        ),
        st.fixed_dictionaries(
            {
                "caption": st.text(max_size=5),
                "width": st.integers(-5, 2000),
                "height": st.sampled_from([512, 0, 77]),
                "annos": st.lists(anno_junk, max_size=4),
            }
        ),
    )
)
def test_junk_only_ever_raises_layout_format_error(data: Any) -> None:
    try:
        result = parse_official_layout(data, "junk.json", "junk")
    except LayoutFormatError as exc:  # the only failure allowed; hypothesis explores both branches
        assert str(exc).startswith("junk.json: ")  # noqa: PT017
    else:
        for spec in result.layout.instances:
            for value in (spec.box or ()) + (spec.point or ()):
                assert math.isfinite(value) and 0 <= value <= 1


def test_uncompressed_rle_and_polygons_are_read(tmp_path: Path) -> None:
    data = {
        "caption": "c",
        "width": 4,
        "height": 4,
        "annos": [
            {"caption": "a blob", "mask": {"size": [4, 4], "counts": [5, 2, 2, 2, 5]}},
            {"caption": "a kite", "polygon": [[0, 0], [4, 0], [0, 4]]},
        ],
    }
    imported = parse_official_layout(data, "x.json", "x")
    blob, kite = imported.layout.instances
    assert blob.kind is InstanceKind.MASK and blob.mask is not None
    assert blob.mask.decode().sum() == 4
    assert kite.kind is InstanceKind.MASK and kite.polygon == ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    assert any("multiple of 8" in w for w in imported.warnings), "a 4x4 canvas is snapped to a size we render"
