"""Image exports and what every export shares: file names from templates (sanitised, cut, suffixed), the
PNG metadata and sidecars, zip files, selection, progress, and failures that leave nothing half-written."""

from __future__ import annotations

import dataclasses
import errno
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
from PIL import Image

from engine.request import InstanceKind, InstanceSpec, RenderRequest
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
from projects.export_images import preview_scale
from projects.png_metadata import REQUEST_KEY
from projects.scenes import SceneLayout, add_scene
from tests.projects.export_scenes import HASHES, PARK, STREET, add_rendered_scene, dataset_project_at, files_under

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with dataset_project_at(tmp_path_factory.mktemp("dataset") / "dataset.instproj") as project:
        yield project


# --- images ---------------------------------------------------------------------------------------


def test_images_export_carries_the_request_and_a_sidecar(dataset_project: Project, tmp_path: Path) -> None:
    out = tmp_path / "images"
    report = export_project(dataset_project, out, ExportOptions(which="all", sidecar=True, annotated=True))
    stems = sorted(p.stem for p in out.glob("*.png"))
    assert stems == ["demo_park_22_1", "demo_street_11_1", "demo_street_12_2"]  # {index}: the render's number
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
            request = RenderRequest.from_json(image.text[REQUEST_KEY])  # type: ignore[attr-defined]
        assert request.seed == sidecar["seed"] and request.instances == layout.instances
        with Image.open(out / "annotated" / f"{stem}.png") as preview:  # small renders, scaled up
            scale = 512 // max(sidecar["width"], sidecar["height"])
            assert scale > 1 and preview.size == (sidecar["width"] * scale, sidecar["height"] * scale)


def test_index_is_the_renders_number_in_its_scene_in_every_export(project: Project, tmp_path: Path) -> None:
    """The same render gets the same {index} whatever else is exported or rendered since."""
    _, (first, second) = add_rendered_scene(project, SceneLayout("street", "x", 64, 64), renders=2)
    add_rendered_scene(project, SceneLayout("park", "x", 64, 64))
    options = ExportOptions(template="{scene}_{index}")
    assert export_project(project, tmp_path / "all", dataclasses.replace(options, which="all")).files == (
        "street_1.png",
        "street_2.png",
        "park_1.png",
    )
    assert export_project(project, tmp_path / "latest", options).files == ("street_2.png", "park_1.png")
    assert export_project(project, tmp_path / "one", dataclasses.replace(options, render_ids=(second,))).files == (
        "street_2.png",
    )
    assert export_project(project, tmp_path / "street", dataclasses.replace(options, scenes=("street",))).files == (
        "street_2.png",
    )
    add_rendered_scene(project, SceneLayout("another scene", "x", 64, 64))
    again = export_project(project, tmp_path / "again", dataclasses.replace(options, render_ids=(first, second)))
    assert again.files == ("street_1.png", "street_2.png")


def test_annotated_previews_of_small_renders_are_scaled_up_so_the_labels_leave_the_picture_visible(
    project: Project, tmp_path: Path
) -> None:
    boxes = (
        InstanceSpec("a red ball", InstanceKind.BOX, box=(0.1, 0.15, 0.45, 0.5)),
        InstanceSpec("a small green cube", InstanceKind.BOX, box=(0.55, 0.5, 0.9, 0.85)),
    )
    add_rendered_scene(project, SceneLayout("tiny", "x", 64, 64, boxes))
    add_rendered_scene(project, SceneLayout("wide", "x", 768, 512, boxes))
    out = tmp_path / "out"
    export_project(project, out, ExportOptions(template="{scene}", annotated=True))
    with Image.open(out / "tiny.png") as image, Image.open(out / "annotated" / "tiny.png") as preview:
        assert image.size == (64, 64) and preview.size == (512, 512)  # eight times, whole pixels
        drawn = np.asarray(preview.convert("RGB"))
        scaled = np.asarray(image.convert("RGB").resize(preview.size, Image.Resampling.NEAREST))
    unchanged = (drawn == scaled).all(axis=2).mean()
    # Lines and captions cover under a tenth of the picture (drawn at 64 px they covered nearly a third).
    assert 0.9 < unchanged < 0.995
    with Image.open(out / "annotated" / "wide.png") as preview:
        assert preview.size == (768, 512)  # large enough already: as rendered
    assert [preview_scale(*size) for size in ((64, 64), (128, 96), (100, 600), (512, 512))] == [8, 4, 1, 1]


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
            if name == "provenance.json":  # the same but for when each export ran
                zipped, written = (json.loads(data) for data in (zf.read(name), (folder / name).read_bytes()))
                assert zipped.pop("exported_at") and written.pop("exported_at") and zipped == written
            elif name.endswith((".png", ".txt")) or (name.endswith(".json") and name != "annotations.json"):
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
