"""Geometry at import, the same for every format (issue 15, items 4 to 6): work bounded by the scene,
masks that decode, and nothing off the canvas turned into something else."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest
from projects.errors import LayoutFormatError
from projects.import_coco import parse_coco
from projects.import_geometry import (
    MAX_MASK_RLE_CHARS,
    GeometryError,
    check_instance,
    clip_polygon,
    polygon_area,
)
from projects.import_labelme import parse_labelme
from projects.import_png import scene_from_png
from projects.official_json import parse_official_layout
from projects.png_metadata import metadata_chunks, png_with_text

REPO = Path(__file__).resolve().parents[2]
SIDE = 8192


# --- item 4: a zig-zag polygon on a huge image costs what the scene costs -------------------------------


def zigzag(teeth: int, side: int = SIDE) -> list[float]:
    """A polygon whose edges sweep across the image `teeth` times, top to bottom."""
    step = (side - 200) / teeth
    flat: list[float] = []
    for i in range(teeth):
        flat += [100.0 if i % 2 == 0 else side - 100.0, round(100 + i * step, 2)]
    return [*flat, side - 50.0, side - 50.0, 50.0, side - 50.0]


def zigzag_coco() -> dict[str, Any]:
    square = [10, 10, 60, 10, 60, 60, 10, 60]
    annotations = [
        # 16,000 points, teeth finer than a canvas pixel: a solid mask once drawn at the canvas size.
        {
            "id": 1,
            "image_id": 1,
            "category_id": 1,
            "bbox": [0, 0, SIDE, SIDE],
            "segmentation": [zigzag(16000), square],
        },
        # 4,000 points, teeth 2 canvas pixels apart: millions of runs, more than a mask may store.
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, SIDE, SIDE], "segmentation": [zigzag(4000), square]},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 100]},
    ]
    return {
        "images": [{"id": 1, "width": SIDE, "height": SIDE, "file_name": "huge.jpg"}],
        "categories": [{"id": 1, "name": "snake"}],
        "annotations": annotations,
    }


_BOUNDED_IMPORT = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from projects.import_coco import read_coco
result = read_coco(sys.argv[1])
print(json.dumps({{"instances": [s.to_dict() for s in result.scenes[0].layout.instances],
                   "warnings": result.all_warnings()}}))
"""


def test_a_zigzag_polygon_on_a_huge_image_is_bounded_by_the_scene(tmp_path: Path) -> None:
    """Before: 2.5 GB and 23 s for 248 KB, and a 31 MB mask (parts were rasterised at 8192x8192)."""
    path = tmp_path / "instances_zigzag.json"
    path.write_text(json.dumps(zigzag_coco()))
    assert path.stat().st_size < 400_000
    limit = 768 * 1024 * 1024  # the interpreter with numpy, pycocotools and PIL takes some 200 MB of it
    script = textwrap.dedent(_BOUNDED_IMPORT.format(limit=limit))
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True, timeout=20, check=False
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-2000:]
    assert elapsed < 10, f"the import took {elapsed:.1f} s"
    outcome = json.loads(done.stdout)
    fine, box = outcome["instances"]
    assert fine["mask"]["size"] == [4096, 4096]  # the canvas, not the 8192x8192 image
    assert len(fine["mask"]["counts"]) <= MAX_MASK_RLE_CHARS
    assert len(json.dumps(fine)) < 300_000  # what the project stores: the mask and a 4,096-point outline
    assert box["kind"] == "box"
    assert any(
        w.startswith("huge: annotation 2 ('snake') segmentation: the mask is too detailed to store") and "skipped" in w
        for w in outcome["warnings"]
    ), outcome["warnings"]


def test_masks_larger_than_the_canvas_are_stored_at_the_canvas_size() -> None:
    width, height = 5000, 1000  # a 4096x816 canvas
    bitmap = np.zeros((height, width), dtype=np.uint8)
    bitmap[250:750, 1250:2500] = 1
    rle = MaskRLE.from_bitmap(bitmap)
    data = {
        "images": [{"id": 1, "width": width, "height": height, "file_name": "wide.jpg"}],
        "categories": [{"id": 1, "name": "pond"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [height, width], "counts": rle.counts}}
        ],
    }
    (spec,) = parse_coco(data, "mem.json").scenes[0].layout.instances
    assert spec.mask is not None and (spec.mask.width, spec.mask.height) == (4096, 816)
    assert spec.mask.bounding_box() == pytest.approx((0.25, 0.25, 0.5, 0.75), abs=1 / 816)


# --- item 5: a mask that does not decode is refused at import, in every format ---------------------------

# Counts in COCO's alphabet (so a RenderRequest accepts them) that do not decode to their size.
BROKEN_MASKS = [MaskRLE(4, 4, "Q[a1"), MaskRLE(4, 4, "0"), MaskRLE(6, 4, "52"), MaskRLE(2, 2, "1111111")]


def png_with_request(request: RenderRequest, path: Path) -> Path:
    chunks = metadata_chunks(request.to_json(), {})
    path.write_bytes(png_with_text(Image.new("RGB", (8, 8)), chunks))
    return path


@pytest.mark.parametrize("mask", BROKEN_MASKS, ids=lambda m: m.counts)
def test_a_png_whose_mask_does_not_decode_is_refused_at_import(mask: MaskRLE, tmp_path: Path) -> None:
    spec = InstanceSpec("a cat", InstanceKind.MASK, mask=mask)
    request = RenderRequest("c", instances=(InstanceSpec("a dog", InstanceKind.POINT, point=(0.5, 0.5)), spec))
    path = png_with_request(request, tmp_path / "broken.png")
    with pytest.raises(LayoutFormatError) as info:
        scene_from_png(path)
    message = str(info.value)
    assert message.startswith(f"{path}: its stored request is invalid: instance 2 ('a cat') mask: ")
    assert "does not decode" in message and "\n" not in message


@pytest.mark.parametrize("mask", BROKEN_MASKS, ids=lambda m: m.counts)
def test_every_other_format_refuses_the_same_masks(mask: MaskRLE) -> None:
    rle = mask.to_dict()
    official = {"caption": "c", "width": 64, "height": 64, "annos": [{"caption": "a cat", "mask": rle}]}
    with pytest.raises(LayoutFormatError, match="does not decode"):
        parse_official_layout(official, "o.json", "o")
    coco = {
        "images": [{"id": 1, "width": mask.width, "height": mask.height}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": rle}],
    }
    with pytest.raises(LayoutFormatError, match=r"annotation 7 \('cat'\) segmentation: the RLE does not decode"):
        parse_coco(coco, "c.json")


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.text(alphabet=[chr(c) for c in range(48, 48 + 64)], min_size=1, max_size=12),
)
def test_check_instance_accepts_exactly_the_masks_that_decode(height: int, width: int, counts: str) -> None:
    spec = InstanceSpec("a blob", InstanceKind.MASK, mask=MaskRLE(height, width, counts))
    try:
        spec.mask.decode()  # type: ignore[union-attr]
    except Exception:
        with pytest.raises(GeometryError, match=r"^instance \('a blob'\) mask: "):
            check_instance(spec)
    else:
        check_instance(spec)


# --- item 6: geometry wholly off the canvas is refused, naming it; what overlaps is clipped --------------

W, H = 400, 300
DIRECTIONS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


@st.composite
def off_canvas(draw: st.DrawFn) -> tuple[str, list[tuple[float, float]]]:
    """A shape (its kind and pixel points) lying wholly outside a W x H image, past the edge tolerance."""
    kind = draw(st.sampled_from(["box", "point", "polygon", "scribble"]))
    count = {"box": 2, "point": 1, "polygon": draw(st.integers(3, 12)), "scribble": draw(st.integers(2, 12))}[kind]
    size = draw(st.floats(1, 2000))
    local = [(draw(st.floats(0, size)), draw(st.floats(0, size))) for _ in range(count)]
    if kind == "box":
        local = [(0.0, 0.0), (size, size)]
    dx, dy = draw(st.sampled_from(DIRECTIONS))
    gap = draw(st.floats(10, 5000))  # the tolerance is 2 px or 1% of a side (4 px here)
    # Outside along each axis that moves: past the far edge, or before the near one; else anywhere along it.
    ox = W + gap if dx > 0 else -size - gap if dx < 0 else draw(st.floats(-size, W))
    oy = H + gap if dy > 0 else -size - gap if dy < 0 else draw(st.floats(-size, H))
    return kind, [(x + ox, y + oy) for x, y in local]


def _labelme(kind: str, points: list[tuple[float, float]]) -> dict[str, Any]:
    shape_type = {"box": "rectangle", "point": "point", "polygon": "polygon", "scribble": "linestrip"}[kind]
    shapes = [
        {"label": "lost", "shape_type": shape_type, "points": [list(p) for p in points]},
        {"label": "kept", "shape_type": "point", "points": [[5, 5]]},
    ]
    return {"shapes": shapes, "imageWidth": W, "imageHeight": H}


def _official(kind: str, points: list[tuple[float, float]]) -> dict[str, Any]:
    lost: dict[str, Any] = {"caption": "lost"}
    if kind == "box":
        (x0, y0), (x1, y1) = points
        lost["bbox"] = [x0, y0, x1 - x0, y1 - y0]
    elif kind == "point":
        lost["point"] = list(points[0])
    else:
        lost[kind] = [list(p) for p in points]
    return {"caption": "c", "width": W, "height": H, "annos": [lost, {"caption": "kept", "point": [5, 5]}]}


def _coco(kind: str, points: list[tuple[float, float]]) -> dict[str, Any] | None:
    flat = [v for p in points for v in p]
    if kind == "box":
        (x0, y0), (x1, y1) = points
        lost: dict[str, Any] = {"bbox": [x0, y0, x1 - x0, y1 - y0]}
    elif kind == "polygon" and polygon_area(points) > 0:
        lost = {"segmentation": [flat]}
    else:
        return None  # COCO has no points or scribbles
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, **lost},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [5, 5, 10, 10]},
    ]
    return {
        "images": [{"id": 1, "width": W, "height": H, "file_name": "x.jpg"}],
        "categories": [{"id": 1, "name": "lost"}, {"id": 2, "name": "kept"}],
        "annotations": annotations,
    }


@settings(max_examples=200, deadline=None)
@given(off_canvas())
def test_a_shape_wholly_off_the_canvas_is_refused_naming_it_in_every_format(
    shape: tuple[str, list[tuple[float, float]]],
) -> None:
    kind, points = shape
    labelme = parse_labelme(_labelme(kind, points), "l.json", "l")
    assert [s.caption for s in labelme.layout.instances] == ["kept"]
    assert any(w.startswith("shape 1 ('lost')") and w.endswith("skipped") for w in labelme.warnings)

    official = parse_official_layout(_official(kind, points), "o.json", "o")
    assert [s.caption for s in official.layout.instances] == ["kept"]
    assert any(w.startswith("instance 1 ('lost')") and w.endswith("; skipped") for w in official.warnings)

    coco = _coco(kind, points)
    if coco is not None:
        (scene,) = parse_coco(coco, "c.json").scenes
        assert [s.caption for s in scene.layout.instances] == ["kept"]
        assert any(w.startswith("annotation 1 ('lost')") and w.endswith("skipped") for w in scene.warnings)


def test_a_file_with_only_off_canvas_instances_is_refused() -> None:
    lost = {"caption": "lost", "bbox": [1000, 1000, 10, 10]}
    with pytest.raises(LayoutFormatError, match=r"^o.json: no instance could be imported \(instance 1 \('lost'\)"):
        parse_official_layout({"caption": "c", "width": W, "height": H, "annos": [lost]}, "o.json", "o")
    # A degenerate box on the canvas stays the point it marks (the official demos have one); off it, refused.
    edge = {"caption": "edge", "bbox": [0, H, 0, 0]}
    imported = parse_official_layout({"caption": "c", "width": W, "height": H, "annos": [edge]}, "o.json", "o")
    assert imported.layout.instances[0].point == (0.0, 1.0)
    with pytest.raises(LayoutFormatError, match=r"point \(0, 900\) lies outside the 400x300 image"):
        parse_official_layout(
            {"caption": "c", "width": W, "height": H, "annos": [{"caption": "x", "bbox": [0, 900, 0, 0]}]},
            "o.json",
            "o",
        )


def _inside_polygon(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    """Even-odd rule."""
    inside = False
    for (x0, y0), (x1, y1) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
        if (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0):
            inside = not inside
    return inside


@settings(max_examples=100, deadline=None)
@given(
    st.floats(-300, 700),
    st.floats(-300, 600),
    st.floats(20, 500),
    st.lists(st.floats(0, 2 * np.pi), min_size=3, max_size=10, unique=True),
)
def test_a_clipped_polygon_is_its_part_on_the_image(cx: float, cy: float, radius: float, angles: list[float]) -> None:
    """Convex polygons anywhere: clipping keeps exactly the part on the image (sampled on a grid)."""
    polygon = [(cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in sorted(angles)]
    assume(polygon_area(polygon) >= 1.0)  # slivers thinner than float noise have no inside to sample
    samples = [(x + 0.37, y + 0.61) for x in range(0, W, 13) for y in range(0, H, 11)]
    expected = [_inside_polygon(x, y, polygon) for x, y in samples]
    if not any(expected) and polygon_area(polygon) > 0:
        # No sample of the image is inside: the polygon may be wholly outside (refused) or a sliver.
        try:
            clip_polygon(polygon, W, H, "shape", [])
        except GeometryError as exc:
            assert str(exc) == "shape lies outside the 400x300 image"  # noqa: PT017 - refusal is one outcome
        return
    clipped = clip_polygon(polygon, W, H, "shape", [])
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in clipped)
    pixels = [(x * W, y * H) for x, y in clipped]
    got = [_inside_polygon(x, y, pixels) for x, y in samples]
    mismatches = [s for s, a, b in zip(samples, expected, got, strict=True) if a != b]
    assert not mismatches
