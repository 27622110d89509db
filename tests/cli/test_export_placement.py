"""`main.py export --include/--labels/--split/--split-seed` and the placement column of `main.py info`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

import main
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.scenes import SceneLayout, add_scene
from tests.projects.export_scenes import add_rendered_scene

INSTANCES = (
    InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),
    InstanceSpec("a dog", InstanceKind.BOX, box=(0.5, 0.5, 0.9, 0.9)),
)


@pytest.fixture(scope="module")
def project_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scenes: missed (latest render missed 1 of 2), unchecked, five placed, and one never rendered."""
    path = tmp_path_factory.mktemp("cli") / "p.instproj"
    with Project.create(path, name="p") as project:
        add_rendered_scene(project, SceneLayout("missed", "m", 64, 64, INSTANCES, seed=1), placement=((1,),))
        add_rendered_scene(project, SceneLayout("unchecked", "u", 64, 64, INSTANCES, seed=2), placement=None)
        for k in range(5):
            add_rendered_scene(project, SceneLayout(f"placed{k}", "p", 64, 64, INSTANCES, seed=10 + k))
        with project.write() as session:
            add_scene(session, SceneLayout("fresh", "f", 64, 64, INSTANCES))
    return path


def test_export_flags_reach_the_dataset_and_the_left_out_report_is_printed(
    project_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "yolo"
    argv = ["export", str(project_path), str(out), "--format", "yolo", "--split", "0.6,0.4", "--split-seed", "9"]
    assert main.main([*argv, "--labels", "found"]) == 0
    printed = capsys.readouterr().out
    assert "exported 5 image(s), 10 annotations" in printed and "(include placed)" in printed
    assert "splits: train 3, val 2" in printed
    assert "note: 1 render(s) (2 instance(s)) left out: not checked" in printed
    assert "note: 1 render(s) (2 instance(s)) left out: missed instances, 1 instance(s) missed" in printed
    data = yaml.safe_load((out / "data.yaml").read_text(encoding="utf-8"))
    assert (data["train"], data["val"]) == ("images/train", "images/val") and "test" not in data
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    assert provenance["settings"]["labels"] == "found" and provenance["settings"]["split_seed"] == 9

    assert (
        main.main(["export", str(project_path), str(tmp_path / "all"), "--format", "coco", "--include", "everything"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "exported 7 image(s), 14 annotations" in printed and "note:" not in printed


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--split", "0.7,0.7"], "error: the split ratios must add up to 1, but 0.7 + 0.7 + 0 = 1.4"),
        (["--split", "0.5,0.5", "--scenes", "placed0"], "error: the val split would be empty"),
        (["--split", "1,0"], "error: a YOLO dataset needs a val split"),
        (["--scenes", "unchecked"], "error: none of the 1 selected render(s) is placed (1 not checked)"),
    ],
)
def test_bad_export_flags_fail_with_one_line_and_write_nothing(
    project_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main.main(["export", str(project_path), str(out), "--format", "yolo", *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_info_shows_each_scenes_placement_in_text_and_json(
    project_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main.main(["info", str(project_path)]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert "1 of 2 missed" in lines["missed"]
    assert "not checked" in lines["unchecked"]
    assert "all placed" in lines["placed0"]
    assert "no renders" in lines["fresh"]
    assert main.main(["info", str(project_path), "--json"]) == 0
    scenes = {s["name"]: s["placement"] for s in json.loads(capsys.readouterr().out)["scenes"]}
    assert scenes == {
        "missed": "1 of 2 missed",
        "unchecked": "not checked",
        **{f"placed{k}": "all placed" for k in range(5)},
        "fresh": None,
    }
