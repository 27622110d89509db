import dataclasses
import errno
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml  # type: ignore[import-untyped]
from PIL import Image, PngImagePlugin
from pycocotools.coco import COCO

from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest
from projects import queue
from projects.database import Project
from projects.errors import ProjectError
from projects.export import (
    ExportCancelled,
    ExportDestinationError,
    ExportError,
    ExportOptions,
    ExportPermissionError,
    NothingToExportError,
    export_project,
)
from projects.export_labels import largest_component, trace_outer_boundary
from projects.queue import RenderOutput
from projects.scenes import SceneLayout, add_scene, scene_to_request

REPO_ROOT = Path(__file__).resolve().parents[2]
HASHES = {"unet": "ab12", "adapter": "cd34"}


# --- building a project with renders ----------------------------------------------------------


def ellipse_bitmap(height: int, width: int, box: tuple[float, float, float, float]) -> np.ndarray[Any, Any]:
    """A filled ellipse inscribed in a normalised box, at its own resolution."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy = (xs + 0.5) / width, (ys + 0.5) / height
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    inside: np.ndarray[Any, Any] = ((cx - (x0 + rx)) / rx) ** 2 + ((cy - (y0 + ry)) / ry) ** 2 <= 1
    return inside.astype(np.uint8)


MASK_BOX = (0.55, 0.3, 0.95, 0.9)
POLYGON = ((0.1, 0.9), (0.3, 0.5), (0.5, 0.9), (0.45, 0.98), (0.15, 0.97))
STREET = SceneLayout(
    "street",
    "a street",
    128,
    96,
    (
        InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.2, 0.5, 0.7)),
        InstanceSpec("a dog", InstanceKind.MASK, mask=MaskRLE.from_bitmap(ellipse_bitmap(48, 64, MASK_BOX))),
        InstanceSpec("a tree", InstanceKind.MASK, polygon=POLYGON),
        InstanceSpec("a kite", InstanceKind.SCRIBBLE, scribble=((0.6, 0.05), (0.7, 0.1), (0.9, 0.2))),
        InstanceSpec("a bird", InstanceKind.POINT, point=(0.8, 0.1)),
    ),
    seed=11,
)
PARK = SceneLayout(
    "park",
    "a park",
    64,
    64,
    (
        InstanceSpec("a  cat", InstanceKind.BOX, box=(0.25, 0.25, 0.75, 0.5)),  # same category as "a cat"
        InstanceSpec("a pond", InstanceKind.MASK, polygon=((0.1, 0.6), (0.9, 0.6), (0.9, 0.95), (0.1, 0.95))),
    ),
    seed=22,
)


def make_png(width: int, height: int, *, noise: bool = True, metadata: RenderRequest | None = None) -> bytes:
    if noise:
        pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
    else:
        image = Image.new("RGB", (width, height), (40, 90, 160))
    info = PngImagePlugin.PngInfo()
    if metadata is not None:
        info.add_text("instance-studio:request", metadata.to_json())
        info.add_text("instance-studio:version", "0.0.1-test")
        info.add_text("instance-studio:model-hashes", json.dumps(HASHES))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def add_rendered_scene(
    project: Project, layout: SceneLayout, *, renders: int = 1, metadata: bool = True, noise: bool = True
) -> tuple[int, list[int]]:
    """A scene with `renders` finished renders (seeds seed, seed+1, ...); returns its id and the render ids."""
    with project.write() as session:
        scene = add_scene(session, layout)
        scene_id = scene.id
        requests = [scene_to_request(session, scene) for _ in range(renders)]
    render_ids = []
    for n, base in enumerate(requests):
        request = RenderRequest.from_dict({**base.to_dict(), "seed": layout.seed + n})
        with project.write() as session:
            queue.enqueue(session, request, scene_id)
            job = queue.claim_next(session)
            assert job is not None
            png = make_png(layout.width, layout.height, noise=noise, metadata=request if metadata else None)
            output = RenderOutput(png, b"thumb", {"sample": 0.1}, dict(HASHES))
            render_ids.append(queue.finish(session, job.id, output))
    return scene_id, render_ids


@pytest.fixture(scope="module")
def dataset_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Two scenes: street (two renders) and park (one, whose PNG lacks our metadata); an unrendered one."""
    path = tmp_path_factory.mktemp("dataset") / "dataset.instproj"
    with Project.create(path, name="demo") as project:
        add_rendered_scene(project, STREET, renders=2)
        add_rendered_scene(project, PARK, metadata=False)
        with project.write() as session:
            add_scene(session, SceneLayout("empty", "nothing yet", 64, 64))
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


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


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
        request = RenderRequest.from_json(text["instance-studio:request"])
        assert request.prompt in ("a street", "a park")
        assert json.loads(text["instance-studio:model-hashes"]) == HASHES
        assert text["instance-studio:version"]


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


# --- images ---------------------------------------------------------------------------------------


def test_images_export_carries_the_request_and_a_sidecar(dataset_project: Project, tmp_path: Path) -> None:
    out = tmp_path / "images"
    report = export_project(dataset_project, out, ExportOptions(which="all", sidecar=True, annotated=True))
    stems = sorted(p.stem for p in out.glob("*.png"))
    assert stems == ["demo_park_22_3", "demo_street_11_1", "demo_street_12_2"]
    assert files_under(out) == set(report.files)
    assert len(report.files) == 9
    for stem in stems:
        sidecar = json.loads((out / f"{stem}.json").read_text(encoding="utf-8"))
        layout = STREET if sidecar["scene"]["name"] == "street" else PARK
        assert sidecar["image"] == f"{stem}.png"
        assert (sidecar["caption"], sidecar["width"], sidecar["height"]) == (
            layout.caption,
            layout.width,
            layout.height,
        )
        assert [InstanceSpec.from_dict(i) for i in sidecar["instances"]] == list(layout.instances)
        assert sidecar["model_hashes"] == HASHES
        with Image.open(out / f"{stem}.png") as image:
            request = RenderRequest.from_json(image.text["instance-studio:request"])  # type: ignore[attr-defined]
        assert request.seed == sidecar["seed"] and request.instances == layout.instances
        with Image.open(out / "annotated" / f"{stem}.png") as preview:
            assert preview.size == (sidecar["width"], sidecar["height"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "etc_passwd"),
        ("CON", "CON_"),
        ("nul.txt", "nul.txt_"),
        ("a/b\\c\x00d\ne", "a_b_cd_e"),  # invisible characters are dropped, whitespace is "_"
        ("...", "scene-{id}"),
        ("  \u202e  ", "scene-{id}"),
    ],
)
def test_hostile_scene_names_are_sanitised(project: Project, tmp_path: Path, name: str, expected: str) -> None:
    scene_id, _ = add_rendered_scene(project, SceneLayout(name, "x", 64, 64), noise=False)
    out = tmp_path / "out"
    before = files_under(tmp_path)
    export_project(project, out, ExportOptions(template="{scene}", sidecar=True))
    assert sorted(files_under(out)) == [f"{expected.format(id=scene_id)}.json", f"{expected.format(id=scene_id)}.png"]
    assert files_under(tmp_path) - before == {f"out/{f}" for f in files_under(out)}


def test_long_names_are_cut_and_stay_inside_the_export(project: Project, tmp_path: Path) -> None:
    add_rendered_scene(project, SceneLayout("é" * 500, "x", 64, 64), noise=False)
    add_rendered_scene(project, SceneLayout("../" * 100 + "x" * 150, "x", 64, 64), noise=False)
    out = tmp_path / "out"
    export_project(project, out, ExportOptions(template="{scene}{scene}{scene}_{seed}"))
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 2
    for name in names:
        assert len(name.encode("utf-8")) <= 200 and ".." not in name and "/" not in name
        assert name.endswith(".png")


def test_colliding_names_get_suffixes(project: Project, tmp_path: Path) -> None:
    for name in ("same", "same", "SAME", "same-2"):
        add_rendered_scene(project, SceneLayout(name, "x", 64, 64), noise=False)
    out = tmp_path / "out"
    report = export_project(project, out, ExportOptions(template="{scene}"))
    assert report.files == ("same.png", "same-2.png", "SAME-3.png", "same-2-2.png")
    assert files_under(out) == set(report.files)


# --- zip ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["images", "coco", "yolo"])
def test_zip_holds_the_same_files_as_the_folder(dataset_project: Project, tmp_path: Path, fmt: Any) -> None:
    options = ExportOptions(format=fmt, which="all", sidecar=True, annotated=True)
    folder = tmp_path / "folder"
    export_project(dataset_project, folder, options)
    archive = tmp_path / "export.zip"
    report = export_project(dataset_project, archive, dataclasses.replace(options, zip=True))
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        assert names == files_under(folder) == set(report.files)
        for name in names:
            if name.endswith((".png", ".txt")) or (name.endswith(".json") and name != "annotations.json"):
                assert zf.read(name) == (folder / name).read_bytes(), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.zip", "folder"]


# --- failures -------------------------------------------------------------------------------------

FULL_DISK_SCRIPT = """
import resource, signal, sys
from pathlib import Path
from projects.database import Project
from projects.export import ExportError, ExportOptions, export_project

project = Project.open(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
try:
    export_project(project, Path(sys.argv[2]), ExportOptions(format="coco", which="all", zip=sys.argv[3] == "zip", sidecar=True))
except ExportError as exc:
    print(type(exc).__name__, exc)
else:
    print("no error")
finally:
    project.close()
"""


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_full_disk_leaves_no_partial_file(tmp_path: Path, kind: str) -> None:
    project_path = tmp_path / "p.instproj"
    with Project.create(project_path) as project:
        add_rendered_scene(project, SceneLayout("small", "x", 64, 64), noise=False)  # a few hundred bytes
        add_rendered_scene(project, SceneLayout("also small", "x", 64, 64), noise=False)
        add_rendered_scene(project, SceneLayout("noisy", "x", 128, 96))  # about 37 kB: over the limit
    exports = tmp_path / "exports"
    exports.mkdir()
    out = exports / ("data.zip" if kind == "zip" else "data")
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(project_path), str(out), kind],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert message.startswith("ExportDiskFullError the disk is full while writing "), message
    assert "nothing was left half-written" in message
    assert list(exports.iterdir()) == []  # no partial file, no temporary file, not even the folder


def test_cancel_removes_what_was_written(dataset_project: Project, tmp_path: Path) -> None:
    asked = []

    def should_cancel() -> bool:
        asked.append(True)
        return len(asked) > 2

    out = tmp_path / "empty"
    out.mkdir()
    with pytest.raises(ExportCancelled, match="after 2 of 3 images"):
        export_project(dataset_project, out, ExportOptions(format="coco", which="all"), should_cancel=should_cancel)
    assert list(out.iterdir()) == []  # the folder was there before, so it stays, empty
    with pytest.raises(ExportCancelled):
        export_project(dataset_project, tmp_path / "new", ExportOptions(), should_cancel=lambda: True)
    assert not (tmp_path / "new").exists()


def test_progress_is_reported_per_image(dataset_project: Project, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    export_project(dataset_project, tmp_path / "out", ExportOptions(which="all"), progress=lambda *a: calls.append(a))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_selection_by_render_ids_and_scenes(dataset_project: Project, tmp_path: Path) -> None:
    report = export_project(
        dataset_project, tmp_path / "a", ExportOptions(render_ids=(3, 1), template="{scene}_{seed}")
    )
    assert report.files == ("park_22.png", "street_11.png")
    report = export_project(dataset_project, tmp_path / "b", ExportOptions(scenes=("street",), which="all"))
    assert report.images == 2
    with pytest.raises(NothingToExportError, match=r"scene 'empty' \(id 3\) has no renders"):
        export_project(dataset_project, tmp_path / "c", ExportOptions(scenes=("street", "empty")))
    with pytest.raises(NothingToExportError, match="there is no render 99"):
        export_project(dataset_project, tmp_path / "d", ExportOptions(render_ids=(99,)))
    with pytest.raises(ProjectError, match="no scene with id or name 'nope'"):
        export_project(dataset_project, tmp_path / "e", ExportOptions(scenes=("nope",)))
    assert not any((tmp_path / n).exists() for n in "cde")


def test_a_project_without_renders_has_nothing_to_export(project: Project, tmp_path: Path) -> None:
    with project.write() as session:
        add_scene(session, SceneLayout("s", "x", 64, 64))
    with pytest.raises(NothingToExportError, match="no scene of the project has a render"):
        export_project(project, tmp_path / "out", ExportOptions())


def test_bad_destinations_and_options(dataset_project: Project, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    with pytest.raises(ExportDestinationError, match="a file is in the way"):
        export_project(dataset_project, a_file, ExportOptions())
    with pytest.raises(ExportDestinationError, match="a file already exists there"):
        export_project(dataset_project, a_file, ExportOptions(zip=True))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(ExportDestinationError, match="not empty"):
        export_project(dataset_project, tmp_path / "full", ExportOptions())
    with pytest.raises(ExportError, match=r"uses \{name\}"):
        export_project(dataset_project, tmp_path / "out", ExportOptions(template="{name}"))
    with pytest.raises(ExportError, match="yolo format only"):
        export_project(dataset_project, tmp_path / "out", ExportOptions(format="coco", segments=True))
    assert a_file.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full"]


def test_permission_denied_is_reported_and_cleaned_up(
    dataset_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from common.atomic_files import write_bytes_atomic as real

    calls = []

    def refuse_the_second(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real(path, data)

    monkeypatch.setattr("projects.export_output.write_bytes_atomic", refuse_the_second)
    with pytest.raises(ExportPermissionError, match=r"permission denied while writing .*demo_street_12_2\.png"):
        export_project(dataset_project, tmp_path / "out", ExportOptions(which="all"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_permission_denied(dataset_project: Project, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(ExportPermissionError, match="permission denied"):
            export_project(dataset_project, locked / "out", ExportOptions())
    finally:
        locked.chmod(0o700)
