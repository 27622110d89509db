"""The export and import commands end to end: exit codes, messages, and round trips through real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import main
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.png_metadata import REQUEST_KEY, png_with_text
from projects.queue import RenderOutput, claim_next, finish
from projects.scenes import SceneLayout, add_scene, find_scene, list_scenes, queue_scene, scene_layout
from tests.conftest import REPO_ROOT
from tests.projects.export_scenes import check_report
from tests.projects.import_samples import OFFICIAL, json_bytes

OFFICIAL_SAMPLE = json_bytes(OFFICIAL)


def rendered_project(path: Path) -> Path:
    """A project with two rendered scenes (the pictures are flat colour; the labels are the layouts)."""
    with Project.create(path) as project:
        with project.write() as session:
            for k, name in enumerate(("cats", "../../etc/passwd")):
                specs = (
                    InstanceSpec(caption="a cat", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.6)),
                    InstanceSpec(
                        caption="a dog", kind=InstanceKind.MASK, polygon=((0.6, 0.6), (0.9, 0.6), (0.75, 0.9))
                    ),
                )
                add_scene(session, SceneLayout(name, "a cat and a dog", 64, 64, specs, seed=k))
            for scene in list_scenes(session):
                queue_scene(session, scene)
        for _ in range(2):
            with project.write() as session:
                job = claim_next(session)
                assert job is not None
                png = png_with_text(Image.new("RGB", (64, 64), "gray"), {REQUEST_KEY: job.request.to_json()})
                check = check_report(job.request)  # placed, so datasets take them by default
                finish(session, job.id, RenderOutput(png, png, {}, {"unet": "abc"}, placement=check))
    return path


def test_coco_export_imports_back_as_the_same_layouts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = rendered_project(tmp_path / "a.instproj")
    assert main.main(["export", str(source), str(tmp_path / "coco"), "--format", "coco"]) == 0
    assert "exported 2 image(s), 4 annotations" in capsys.readouterr().out
    assert not any(".." in p.name or p.name == "passwd" for p in (tmp_path / "coco").rglob("*"))
    target = tmp_path / "b.instproj"
    assert main.main(["new", str(target)]) == 0
    assert main.main(["import-coco", str(target), str(tmp_path / "coco" / "annotations.json")]) == 0
    with Project.open(target) as project, project.read() as session:
        imported = [scene_layout(s) for s in list_scenes(session)]
    with Project.open(source) as project, project.read() as session:
        original = scene_layout(find_scene(session, "cats"))
    assert len(imported) == 2
    boxes = [i.box for i in imported[0].instances]
    assert boxes[0] == pytest.approx(original.instances[0].box, abs=1 / 64)


def test_png_export_dropped_back_recreates_the_scene(tmp_path: Path) -> None:
    source = rendered_project(tmp_path / "a.instproj")
    assert main.main(["export", str(source), str(tmp_path / "png"), "--scenes", "cats"]) == 0
    (png,) = (tmp_path / "png").glob("*.png")
    target = tmp_path / "b.instproj"
    main.main(["new", str(target)])
    assert main.main(["import-png", str(target), str(png)]) == 0
    with Project.open(target) as project, project.read() as session:
        (scene,) = list_scenes(session)
        layout = scene_layout(scene)
    assert [i.caption for i in layout.instances] == ["a cat", "a dog"] and layout.seed == 0


def test_labelme_import_and_hostile_files_fail_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "b.instproj"
    main.main(["new", str(target)])
    labelme = {
        "imageWidth": 100,
        "imageHeight": 80,
        "shapes": [
            {"label": "cat", "shape_type": "rectangle", "points": [[10, 10], [50, 60]]},
            {"label": "ball", "shape_type": "point", "points": [[70, 20]]},
        ],
    }
    (tmp_path / "a.json").write_text(json.dumps(labelme))
    assert main.main(["import-labelme", str(target), str(tmp_path / "a.json")]) == 0
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    capsys.readouterr()
    assert main.main(["import-labelme", str(target), str(tmp_path / "deep.json")]) == 1
    err = capsys.readouterr().err
    assert "deep.json" in err and "nested too deeply" in err
    assert main.main(["import-png", str(target), str(tmp_path / "a.json")]) == 1
    with Project.open(target) as project, project.read() as session:
        assert len(list_scenes(session)) == 1  # the bad files added nothing


def test_export_refuses_to_overwrite_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = rendered_project(tmp_path / "a.instproj")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert main.main(["export", str(source), str(tmp_path / "full")]) == 1
    assert "error:" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(sys.platform == "win32", reason="file names are bytes on POSIX only")
@pytest.mark.parametrize("verbose", [[], ["--verbose"]], ids=["quiet", "verbose"])
def test_files_with_non_utf8_names_are_imported_and_logged_without_a_logging_error(
    tmp_path: Path, verbose: list[str]
) -> None:
    """A name with byte 0xff (kept by Python as a lone surrogate) is printed, logged and stored escaped."""
    project = tmp_path / "p.instproj"
    assert main.main(["new", str(project)]) == 0
    good = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9 \xff.json"))
    bad = Path(os.fsdecode(os.fsencode(tmp_path) + b"/broken \xff.json"))
    good.write_bytes(OFFICIAL_SAMPLE)
    bad.write_bytes(b"{not json")
    missing = Path(os.fsdecode(os.fsencode(tmp_path) + b"/gone \xff.instproj"))
    home = tmp_path / "home"
    for target, file, code in ((project, good, 0), (project, bad, 1), (missing, good, 1)):
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "main.py"), *verbose, "import-json", str(target), str(file)],
            capture_output=True,
            cwd=REPO_ROOT,
            # A strict UTF-8 console, as on most desktops (the C locale would write the raw bytes back).
            env={**os.environ, "INSTANCE_STUDIO_HOME": str(home), "PYTHONIOENCODING": "utf-8"},
            timeout=60,
        )
        out, err = (stream.decode("utf-8", "backslashreplace") for stream in (proc.stdout, proc.stderr))
        assert "Logging error" not in err and "Traceback" not in err, err
        assert proc.returncode == code, err
        assert "\\xff." in (out if code == 0 else err)
    log = (home / "logs" / "instance-studio.log").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert "broken \\xff.json" in log and "gone \\" in log
    with Project.open(project) as opened, opened.read() as session:
        assert [scene.name for scene in list_scenes(session)] == ["caf\ufffd \ufffd"]
