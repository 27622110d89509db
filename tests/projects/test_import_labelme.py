import json
from pathlib import Path
from typing import Any

import pytest

from engine.request import MAX_INSTANCES, InstanceKind
from projects.errors import LayoutFormatError
from projects.import_labelme import CIRCLE_POINTS, parse_labelme, read_labelme

W, H = 400, 300


def shape(label: str, shape_type: str | None, points: list[list[Any]], **extra: Any) -> dict[str, Any]:
    return {"label": label, "points": points, "group_id": None, "shape_type": shape_type, "flags": {}, **extra}


def labelme(shapes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": "../../etc/passwd",
        "imageData": "!!! not base64, and never decoded !!!",
        "imageHeight": H,
        "imageWidth": W,
        **extra,
    }


EVERY_KIND = [
    shape("cat", "rectangle", [[300, 200], [100, 50]]),  # corners in any order
    shape("star", "point", [[40, 30]]),
    shape("road", "line", [[0, 150], [400, 150]]),
    shape("river", "linestrip", [[0, 0], [100, 60], [200, 30], [399, 299]]),
    shape("kite", "polygon", [[200, 30], [260, 90], [200, 150], [140, 90]]),
    shape("sun", "circle", [[350, 30], [350, 70]]),  # radius 40 reaching past the top edge
    shape("blob", None, [[10, 200], [60, 200], [60, 280]]),  # no shape_type: labelme's polygon
    shape("fog", "mask", [[0, 0], [10, 10]], mask="iVBORw0KGgo="),
    shape("ghost", "cuboid", [[1, 1], [2, 2]]),
    shape("far", "rectangle", [[10, 10], [4000, 20]]),  # reaches past the right edge: clipped
    shape("gone", "rectangle", [[500, 10], [4000, 20]]),  # wholly outside: refused
    shape("", "point", [[5, 5]]),
    shape("bad", "point", [["x", 5]]),
    shape("short", "polygon", [[1, 1], [2, 2]]),
]


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_every_shape_kind(tmp_path: Path) -> None:
    path = write(tmp_path / "street 01.json", labelme(EVERY_KIND))
    imported = read_labelme(path)
    layout = imported.layout
    assert (layout.name, layout.width, layout.height) == ("street 01", 400, 304)  # a multiple of 8
    captions = [i.caption for i in layout.instances]
    assert captions == ["cat", "star", "road", "river", "kite", "sun", "blob", "far"]
    assert layout.caption == "a photo of a cat, a star, a road, a river, a kite, a sun, a blob and a far"
    cat, star, road, river, kite, sun, blob, far = layout.instances
    assert cat.kind is InstanceKind.BOX and cat.box == (0.25, 50 / H, 0.75, 200 / H)
    assert star.kind is InstanceKind.POINT and star.point == (0.1, 0.1)
    assert road.kind is InstanceKind.SCRIBBLE and road.scribble == ((0.0, 0.5), (1.0, 0.5))
    assert river.kind is InstanceKind.SCRIBBLE and river.scribble is not None and len(river.scribble) == 4
    assert kite.kind is InstanceKind.MASK and kite.polygon == ((0.5, 0.1), (0.65, 0.3), (0.5, 0.5), (0.35, 0.3))
    assert kite.box == (0.35, 0.1, 0.65, 0.5)
    # The circle's 32-point outline, cut at the top edge: the points above it give way to two on it.
    assert sun.kind is InstanceKind.MASK and sun.polygon is not None
    assert (390 / W, 30 / H) in [pytest.approx(p) for p in sun.polygon]
    assert min(y for _, y in sun.polygon) == 0.0 and len(sun.polygon) < CIRCLE_POINTS
    assert sun.box == pytest.approx((310 / W, 0.0, 390 / W, 70 / H))
    assert blob.kind is InstanceKind.MASK and blob.polygon == ((10 / W, 200 / H), (60 / W, 200 / H), (60 / W, 280 / H))
    assert far.kind is InstanceKind.BOX and far.box == (10 / W, 10 / H, 1.0, 20 / H)
    assert all(spec.problems() == [] for spec in layout.instances)

    assert imported.warnings == (
        "shape 6 ('sun') reaches outside the 400x300 image; clipped to it",
        "shape 8 ('fog'): labelme mask shapes are not imported (draw a polygon instead); skipped",
        "shape 9 ('ghost'): unknown shape_type 'cuboid'; skipped",
        "shape 10 ('far') reaches outside the 400x300 image; clipped to it",
        "shape 11 ('gone') lies outside the 400x300 image; skipped",
        "shape 12 has no label; skipped",
        "shape 13 ('bad') points has a coordinate that is not a finite number; skipped",
        "shape 14 ('short'): a polygon needs at least 3 points, got 2; skipped",
    )


def test_caption_argument_and_template(tmp_path: Path) -> None:
    shapes = [shape("dog", "point", [[1, 1]]), shape("dog", "point", [[2, 2]]), shape("apple", "point", [[3, 3]])]
    path = write(tmp_path / "a.json", labelme(shapes))
    assert read_labelme(path).layout.caption == "a photo of two dogs and an apple"
    assert read_labelme(path, caption="two dogs under a tree").layout.caption == "two dogs under a tree"
    assert read_labelme(path, caption_template="{labels}, oil painting").layout.caption == (
        "two dogs and an apple, oil painting"
    )


def test_more_than_thirty_shapes_keeps_the_largest(tmp_path: Path) -> None:
    shapes = [shape(f"box {k}", "rectangle", [[0, 0], [k, 10]]) for k in range(1, 36)]
    imported = read_labelme(write(tmp_path / "many.json", labelme(shapes)))
    assert [i.caption for i in imported.layout.instances] == [f"box {k}" for k in range(6, 36)]
    assert imported.warnings == (f"35 shapes; kept the {MAX_INSTANCES} largest (at most {MAX_INSTANCES} fit a scene)",)


def test_large_images_are_scaled_to_a_canvas(tmp_path: Path) -> None:
    data = labelme([shape("cat", "rectangle", [[0, 0], [4000, 3000]])], imageWidth=8000, imageHeight=6000)
    imported = read_labelme(write(tmp_path / "big.json", data))
    assert (imported.layout.width, imported.layout.height) == (4096, 3072)
    assert imported.layout.instances[0].box == (0.0, 0.0, 0.5, 0.5)
    assert imported.warnings == ("the 8000x6000 image becomes a 4096x3072 canvas (the renderer's limits)",)


def test_hostile_names_never_become_paths(tmp_path: Path) -> None:
    data = labelme([shape("../../evil", "point", [[1, 1]])])
    imported = parse_labelme(data, "mem.json", "scene")
    assert imported.layout.instances[0].caption == "../../evil"  # a caption is text for the model, nothing more
    assert read_labelme(write(tmp_path / "..json", data)).layout.name == "labelme scene"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["..json"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ([], "the top level must be an object"),
        (labelme([], imageWidth=None), "'imageWidth' and 'imageHeight' must be whole numbers of pixels"),
        (labelme([], imageHeight=2.5), "'imageWidth' and 'imageHeight' must be whole numbers"),
        ({"imageWidth": 4, "imageHeight": 4}, "'shapes' is missing or not a list"),
        (labelme([]), "'shapes' is empty"),
        (
            labelme([shape("far", "point", [[-900, 5]])]),
            r"no shape could be imported \(shape 1 \('far'\): point \(-900, 5\) lies outside",
        ),
    ],
)
def test_broken_files_are_refused_naming_the_file(tmp_path: Path, data: Any, problem: str) -> None:
    path = write(tmp_path / "broken.json", data)
    with pytest.raises(LayoutFormatError, match=f"^{path}: {problem}"):
        read_labelme(path)


def test_hostile_json_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"shapes": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    with pytest.raises(LayoutFormatError, match=f"^{deep}: JSON is nested too deeply"):
        read_labelme(deep)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"label": "\xff"}')
    with pytest.raises(LayoutFormatError, match=f"^{bad}: not UTF-8 text: byte 0xff at line 1, column 12"):
        read_labelme(bad)
    path = write(tmp_path / "ok.json", labelme(EVERY_KIND))
    with pytest.raises(LayoutFormatError, match="at most 10 are read"):
        read_labelme(path, max_bytes=10)


def test_a_huge_circle_is_refused() -> None:
    data = labelme([shape("sun", "circle", [[10, 10], [10, 1e9]]), shape("cat", "point", [[1, 1]])])
    imported = parse_labelme(data, "mem.json", "scene")
    assert [i.caption for i in imported.layout.instances] == ["cat"]
    assert "radius" in imported.warnings[0]
