"""Dataset exports: COCO and YOLO annotations read back and compared with the layouts they came from, and
the images they point to, which carry our metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml  # type: ignore[import-untyped]
from PIL import Image
from pycocotools.coco import COCO

from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects.database import Project
from projects.export import ExportOptions, export_project
from projects.export_labels import largest_component, trace_outer_boundary
from projects.png_metadata import HASHES_KEY, REQUEST_KEY, VERSION_KEY
from tests.projects.export_scenes import HASHES, PARK, STREET, dataset_project_at


@pytest.fixture(scope="module")
def dataset_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with dataset_project_at(tmp_path_factory.mktemp("dataset") / "dataset.instproj") as project:
        yield project


# --- reading labels back ------------------------------------------------------------------------


def pixel_box(box: tuple[float, float, float, float], width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = box
    return [x0 * width, y0 * height, (x1 - x0) * width, (y1 - y0) * height]


def bounds_of(bitmap: np.ndarray[Any, Any]) -> list[float]:
    ys, xs = np.nonzero(bitmap)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]


def polygon_bitmap(points: Any, width: int, height: int) -> np.ndarray[Any, Any]:
    """The pixels whose centres lie inside a normalised polygon (even-odd rule), computed exactly."""
    ys, xs = np.mgrid[0:height, 0:width]
    px, py = (xs + 0.5) / width, (ys + 0.5) / height
    inside = np.zeros((height, width), dtype=bool)
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        crosses = (y1 > py) != (y2 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            inside ^= crosses & (px < x1 + (py - y1) * (x2 - x1) / (y2 - y1))
    return inside.astype(np.uint8)


def expected_region(spec: InstanceSpec, width: int, height: int) -> np.ndarray[Any, Any]:
    if spec.mask is not None:
        bitmap = Image.fromarray(spec.mask.decode() * 255).resize((width, height), Image.Resampling.NEAREST)
        return (np.asarray(bitmap) > 0).astype(np.uint8)
    assert spec.polygon is not None
    return polygon_bitmap(spec.polygon, width, height)


def iou(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum() / (a | b).sum())


def expected_box(spec: InstanceSpec, width: int, height: int) -> list[float]:
    if spec.mask is not None:
        return bounds_of(expected_region(spec, width, height))
    if spec.box is not None:
        return pixel_box(spec.box, width, height)
    points = spec.polygon or spec.scribble
    assert points is not None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return pixel_box((min(xs), min(ys), max(xs), max(ys)), width, height)


# --- COCO -----------------------------------------------------------------------------------------


def test_coco_round_trip_matches_the_layouts(dataset_project: Project, tmp_path: Path) -> None:
    out = tmp_path / "coco"
    report = export_project(dataset_project, out, ExportOptions(format="coco", which="all"))

    assert (report.images, report.annotations, report.skipped_points) == (3, 10, 2)
    assert report.scenes_without_renders == 1
    coco = COCO(str(out / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["a cat", "a dog", "a tree", "a kite", "a pond"]
    layouts = {"street": STREET, "park": PARK}
    seen_slots = 0
    for image in coco.loadImgs(coco.getImgIds()):
        provenance = image["instance_studio"]
        layout = layouts[provenance["scene_name"]]
        assert (image["width"], image["height"]) == (layout.width, layout.height)
        assert provenance["model_hashes"] == HASHES
        assert RenderRequest.from_dict(provenance["request"]).seed == provenance["seed"]
        assert (out / "images" / image["file_name"]).is_file()
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
            spec = layout.instances[ann["instance_studio"]["slot"]]
            seen_slots += 1
            assert ann["caption"] == spec.caption and ann["iscrowd"] == 0
            assert coco.cats[ann["category_id"]]["name"] == " ".join(spec.caption.split())
            assert ann["bbox"] == pytest.approx(expected_box(spec, layout.width, layout.height), abs=1.0)
            if spec.kind is InstanceKind.MASK:
                region = coco.annToMask(ann)
                assert iou(region, expected_region(spec, layout.width, layout.height)) > 0.95
                assert ann["area"] == region.sum()
            else:
                assert "segmentation" not in ann
    assert seen_slots == 10


def test_coco_images_are_the_stored_pngs_with_metadata(dataset_project: Project, tmp_path: Path) -> None:
    out = tmp_path / "coco"
    report = export_project(dataset_project, out, ExportOptions(format="coco"))
    assert report.images == 2 and report.reembedded == 1  # the latest of street, and park
    for name in sorted((out / "images").iterdir()):
        with Image.open(name) as image:
            text = image.text  # type: ignore[attr-defined]
        request = RenderRequest.from_json(text[REQUEST_KEY])
        assert request.prompt in ("a street", "a park")
        assert json.loads(text[HASHES_KEY]) == HASHES
        assert text[VERSION_KEY]


# --- YOLO -----------------------------------------------------------------------------------------


def read_yolo(out: Path) -> tuple[dict[str, Any], dict[str, list[tuple[int, list[float]]]]]:
    """data.yaml and every label file (stem -> [(class, values)]), each checked for shape."""
    data = yaml.safe_load((out / "data.yaml").read_text(encoding="utf-8"))
    labels = {}
    for path in sorted((out / "labels").iterdir()):
        rows = []
        for line in path.read_text(encoding="ascii").splitlines():
            cls, *values = line.split()
            assert all(0.0 <= float(v) <= 1.0 for v in values)
            rows.append((int(cls), [float(v) for v in values]))
        labels[path.stem] = rows
    return data, labels


def provenance_by_stem(out: Path) -> dict[str, dict[str, Any]]:
    records = [json.loads(line) for line in (out / "provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    return {Path(r["image"]).stem: r for r in records}


def test_yolo_detection_labels_match_the_layouts(dataset_project: Project, tmp_path: Path) -> None:
    out = tmp_path / "yolo"
    export_project(dataset_project, out, ExportOptions(format="yolo", which="all"))
    data, labels = read_yolo(out)
    assert data["path"] == str(out) and data["train"] == "images" and data["val"] == "images"
    assert data["names"] == {0: "a cat", 1: "a dog", 2: "a tree", 3: "a kite", 4: "a pond"}
    provenance = provenance_by_stem(out)
    assert set(provenance) == set(labels) == {p.stem for p in (out / "images").iterdir()}
    layouts = {"street": STREET, "park": PARK}
    for stem, rows in labels.items():
        layout = layouts[provenance[stem]["scene_name"]]
        width, height = layout.width, layout.height
        specs = [s for s in layout.instances if s.kind is not InstanceKind.POINT]
        assert len(rows) == len(specs)
        for (cls, (cx, cy, w, h)), spec in zip(rows, specs, strict=True):
            assert data["names"][cls] == " ".join(spec.caption.split())
            box = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
            assert box == pytest.approx(expected_box(spec, width, height), abs=1.0)


def test_yolo_segments_match_the_regions(dataset_project: Project, tmp_path: Path) -> None:
    out = tmp_path / "yolo-seg"
    export_project(dataset_project, out, ExportOptions(format="yolo", segments=True))
    data, labels = read_yolo(out)
    provenance = provenance_by_stem(out)
    layouts = {"street": STREET, "park": PARK}
    for stem, rows in labels.items():
        layout = layouts[provenance[stem]["scene_name"]]
        width, height = layout.width, layout.height
        specs = [s for s in layout.instances if s.kind is not InstanceKind.POINT]
        for (cls, values), spec in zip(rows, specs, strict=True):
            assert data["names"][cls] == " ".join(spec.caption.split())
            assert len(values) % 2 == 0 and len(values) >= 6
            points = list(zip(values[::2], values[1::2], strict=True))
            drawn = polygon_bitmap(points, width, height)
            if spec.kind is InstanceKind.MASK:
                assert iou(drawn, expected_region(spec, width, height)) > 0.9
            else:  # boxes and scribbles become their rectangle
                assert bounds_of(drawn) == pytest.approx(expected_box(spec, width, height), abs=1.0)


def test_traced_outline_of_a_bitmap_encloses_exactly_its_largest_part() -> None:
    bitmap = np.zeros((20, 30), dtype=np.uint8)
    bitmap[2:12, 3:15] = 1  # the large part, with a hole
    bitmap[5:7, 6:8] = 0
    bitmap[15:18, 20:29] = 1  # a smaller part
    bitmap[12, 15] = 1  # touches the large part only diagonally: a part of its own
    part = largest_component(bitmap)
    assert part.sum() == 10 * 12 - 4
    ring = trace_outer_boundary(part)
    assert sorted(ring) == [(3, 2), (3, 12), (15, 2), (15, 12)]
