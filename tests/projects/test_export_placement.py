"""Datasets of renders that hold their layout: include placed/best/everything, labels as drawn or as
found by the placement check, seeded splits by scene, and the provenance file."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from engine.placement_report import PlacementThresholds
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.export import ExportError, ExportOptions, NothingToExportError, SplitRatios, export_project
from projects.export_splits import SplitError, plan_splits
from projects.placement import set_placement_thresholds
from projects.scenes import SceneLayout
from tests.projects.export_scenes import HASHES, add_rendered_scene, files_under

SIZE = 64
INSTANCES = (
    InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),
    InstanceSpec("a pond", InstanceKind.MASK, polygon=((0.5, 0.6), (0.9, 0.6), (0.9, 0.9), (0.5, 0.9))),
)
FOUND_BOX_PX = [12.8, 12.8, 25.6, 25.6]  # export_scenes.check_report's box for an instance without one, at 64 px


def layout(name: str, seed: int) -> SceneLayout:
    return SceneLayout(name, f"scene {name}", SIZE, SIZE, INSTANCES, seed=seed)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, dict[str, list[int]]]]:
    """Six scenes: a (missed, then placed), b (placed, then missed), c (not checked), d, e, f (placed)."""
    path = tmp_path_factory.mktemp("placement") / "checked.instproj"
    ids: dict[str, list[int]] = {}
    with Project.create(path, name="checked") as project:
        _, ids["a"] = add_rendered_scene(project, layout("a", 10), renders=2, placement=((1,), ()))
        _, ids["b"] = add_rendered_scene(project, layout("b", 20), renders=2, placement=((), (0,)))
        _, ids["c"] = add_rendered_scene(project, layout("c", 30), placement=None)
        for k, name in enumerate("def"):
            _, ids[name] = add_rendered_scene(project, layout(name, 40 + k))
        yield project, ids


def exported_ids(out: Path) -> list[int]:
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    return sorted(r["render_id"] for split in provenance["splits"].values() for r in split["renders"])


# --- include ----------------------------------------------------------------------------------------


def test_datasets_take_only_placed_renders_by_default_and_say_what_was_left_out(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, ids = checked
    report = export_project(project, tmp_path / "coco", ExportOptions(format="coco"))
    assert report.include == "placed"
    assert exported_ids(tmp_path / "coco") == sorted([ids["a"][1], ids["d"][0], ids["e"][0], ids["f"][0]])
    assert [(i.reason, i.renders, i.instances, i.missed) for i in report.left_out] == [
        ("not checked", 1, 2, 0),
        ("missed instances", 1, 2, 1),
    ]
    assert report.notes()[:2] == [
        "1 render(s) (2 instance(s)) left out: not checked",
        "1 render(s) (2 instance(s)) left out: missed instances, 1 instance(s) missed",
    ]


def test_placed_of_all_renders_and_images_take_everything_by_default(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, ids = checked
    report = export_project(project, tmp_path / "all", ExportOptions(format="yolo", which="all"))
    assert exported_ids(tmp_path / "all") == sorted([ids["a"][1], ids["b"][0], *ids["d"], *ids["e"], *ids["f"]])
    assert {i.reason: i.renders for i in report.left_out} == {"not checked": 1, "missed instances": 2}
    images = export_project(project, tmp_path / "images", ExportOptions(format="images"))
    assert images.include == "everything" and images.images == 6 and images.left_out == ()


def test_best_takes_each_scenes_best_checked_render_among_all_of_its_renders(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, ids = checked
    report = export_project(project, tmp_path / "best", ExportOptions(format="coco", include="best"))
    assert exported_ids(tmp_path / "best") == sorted([ids["a"][1], ids["b"][0], *ids["d"], *ids["e"], *ids["f"]])
    assert {i.reason: i.renders for i in report.left_out} == {"not checked": 1, "not best": 2}
    assert report.best_with_misses == 0


def test_placed_is_judged_by_the_projects_current_thresholds(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, _ = checked
    with project.write() as session:
        set_placement_thresholds(session, PlacementThresholds(iou=0.9))  # the checks found IoU 0.8
    try:
        with pytest.raises(NothingToExportError, match=r"none of the 6 selected render\(s\) is placed"):
            export_project(project, tmp_path / "none", ExportOptions(format="coco"))
        assert not (tmp_path / "none").exists()
        report = export_project(project, tmp_path / "best", ExportOptions(format="coco", include="best"))
        assert report.best_with_misses == 5  # a best render is kept even when it misses
    finally:
        with project.write() as session:
            set_placement_thresholds(session, PlacementThresholds())


# --- labels -------------------------------------------------------------------------------------------


def test_found_labels_are_the_checks_boxes_and_unfound_instances_are_skipped_and_counted(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, _ = checked
    options = ExportOptions(format="coco", which="all", include="everything", labels="found")
    report = export_project(project, tmp_path / "found", options)
    coco = json.loads((tmp_path / "found" / "annotations.json").read_text(encoding="utf-8"))
    # 7 checked renders of 2 instances, 2 not found (a#1 slot 1, b#2 slot 0); c's 2 instances were never checked
    assert (report.annotations, report.skipped_not_found, report.skipped_unchecked) == (12, 2, 2)
    assert "2 instance(s) the placement check did not find got no label" in report.notes()
    ponds = [a for a in coco["annotations"] if a["caption"] == "a pond"]
    assert ponds and all(a["bbox"] == FOUND_BOX_PX and "segmentation" not in a for a in ponds)
    assert all(a["instance_studio"]["labels"] == "found" for a in coco["annotations"])

    drawn = export_project(
        project, tmp_path / "drawn", ExportOptions(format="coco", which="all", include="everything")
    )
    coco = json.loads((tmp_path / "drawn" / "annotations.json").read_text(encoding="utf-8"))
    assert drawn.annotations == 16
    pond = next(a for a in coco["annotations"] if a["caption"] == "a pond")
    assert pond["bbox"] != FOUND_BOX_PX and "segmentation" in pond


def test_found_yolo_labels_are_boxes_in_yolo_form(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, _ = checked
    export_project(project, tmp_path / "y", ExportOptions(format="yolo", scenes=("d",), labels="found"))
    (label,) = (tmp_path / "y" / "labels").glob("*.txt")
    lines = [line.split() for line in label.read_text().splitlines()]
    assert lines == [
        ["0", "0.300000", "0.300000", "0.400000", "0.400000"],
        ["1", "0.400000", "0.400000", "0.400000", "0.400000"],
    ]


# --- splits -------------------------------------------------------------------------------------------


def split_of_renders(out: Path) -> dict[int, str]:
    provenance = json.loads((out / "provenance.json").read_text(encoding="utf-8"))
    return {r["render_id"]: name for name, split in provenance["splits"].items() for r in split["renders"]}


def test_yolo_splits_are_by_scene_seeded_and_named_in_data_yaml(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, ids = checked
    options = ExportOptions(
        format="yolo", which="all", include="everything", split=SplitRatios(0.6, 0.2, 0.2), split_seed=7
    )
    report = export_project(project, tmp_path / "one", options)
    export_project(project, tmp_path / "two", options)
    first, second = split_of_renders(tmp_path / "one"), split_of_renders(tmp_path / "two")
    assert first == second  # the same seed: the same splits
    assert dict(report.splits) == {
        name: sum(1 for s in first.values() if s == name) for name in ("train", "val", "test")
    }
    scene_counts = {
        name: len({s for s, rs in ids.items() if first[rs[0]] == name}) for name in ("train", "val", "test")
    }
    assert scene_counts == {"train": 4, "val": 1, "test": 1}  # 6 scenes at 0.6/0.2/0.2
    for renders in ids.values():
        assert len({first[r] for r in renders}) == 1  # a scene's renders never straddle splits
    data = yaml.safe_load((tmp_path / "one" / "data.yaml").read_text(encoding="utf-8"))
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    for name in ("train", "val", "test"):
        images = {p.stem for p in (tmp_path / "one" / "images" / name).glob("*.png")}
        labels = {p.stem for p in (tmp_path / "one" / "labels" / name).glob("*.txt")}
        assert images == labels and len(images) == dict(report.splits)[name]
    others = []
    for seed in (1, 2, 3):
        export_project(project, tmp_path / f"seed{seed}", dataclasses.replace(options, split_seed=seed))
        others.append(split_of_renders(tmp_path / f"seed{seed}"))
    assert any(other != first for other in others)  # the seed shuffles


def test_coco_gets_one_annotation_file_per_split_with_shared_categories(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, _ = checked
    out = tmp_path / "coco"
    report = export_project(
        project, out, ExportOptions(format="coco", include="everything", split=SplitRatios(0.5, 0.5))
    )
    assert dict(report.splits) == {"train": 3, "val": 3}
    assert not (out / "annotations.json").exists() and not (out / "annotations" / "instances_test.json").exists()
    seen = []
    for name in ("train", "val"):
        coco = json.loads((out / "annotations" / f"instances_{name}.json").read_text(encoding="utf-8"))
        assert [c["name"] for c in coco["categories"]] == ["a cat", "a pond"]
        assert len(coco["images"]) == 3 and len(coco["annotations"]) == 6
        for image in coco["images"]:
            assert (out / "images" / name / image["file_name"]).is_file()
            seen.append(image["instance_studio"]["render_id"])
    assert len(set(seen)) == 6
    assert files_under(out) == set(report.files)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ExportOptions(format="yolo", scenes=("d",), split=SplitRatios(0.8, 0.2)), "the val split would be empty"),
        (ExportOptions(format="coco", scenes=("d", "e"), split=SplitRatios(0.6, 0.2, 0.2)), "the test split would"),
        (ExportOptions(format="yolo", split=SplitRatios(1.0, 0.0)), "a YOLO dataset needs a val split"),
        (ExportOptions(format="images", split=SplitRatios(0.5, 0.5)), "splits apply to the coco and yolo"),
        (ExportOptions(format="images", labels="found"), "apply to the coco and yolo formats only"),
    ],
)
def test_a_split_that_would_be_empty_is_refused_before_anything_is_written(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path, options: ExportOptions, message: str
) -> None:
    project, _ = checked
    with pytest.raises(ExportError, match=message):
        export_project(project, tmp_path / "out", options)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.8,0.3", r"must add up to 1, but 0.8 \+ 0.3 \+ 0 = 1.1"),
        ("1.2,-0.2", "the val ratio must not be negative"),
        ("0.5", "TRAIN,VAL or TRAIN,VAL,TEST"),
        ("0.5,,0.5", "TRAIN,VAL or TRAIN,VAL,TEST"),
        ("half,half", "must be numbers"),
        ("nan,0.5,0.5", "the train ratio must be a number"),
    ],
)
def test_split_ratios_out_of_range_are_refused_with_one_line(text: str, message: str) -> None:
    with pytest.raises(SplitError, match=message):
        SplitRatios.parse(text)


def test_thirds_written_as_decimals_are_a_split() -> None:
    assert SplitRatios.parse("0.33,0.33,0.33").values() == (0.33, 0.33, 0.33)
    assert SplitRatios.parse(" 0.8 , 0.2 ").values() == (0.8, 0.2, 0.0)


# --- provenance -------------------------------------------------------------------------------------


def test_the_provenance_file_says_what_the_dataset_was_made_from(
    checked: tuple[Project, dict[str, list[int]]], tmp_path: Path
) -> None:
    project, ids = checked
    options = ExportOptions(format="yolo", which="all", split=SplitRatios(0.6, 0.4), split_seed=3)
    export_project(project, tmp_path / "y", options)
    data: dict[str, Any] = json.loads((tmp_path / "y" / "provenance.json").read_text(encoding="utf-8"))
    assert data["format"] == "instance-studio-dataset" and data["app_version"] and data["exported_at"]
    assert data["settings"] == {
        "format": "yolo",
        "which": "all",
        "include": "placed",
        "labels": "drawn",
        "segments": False,
        "split": {"train": 0.6, "val": 0.4, "test": 0.0},
        "split_seed": 3,
    }
    assert data["placement"] == {"thresholds": {"iou": 0.5, "score": 0.2}, "checkers": ["test-checker"]}
    assert data["model_hashes"] == [HASHES]
    assert set(data["splits"]) == {"train", "val"}
    placed = {ids["a"][1], ids["b"][0], *ids["d"], *ids["e"], *ids["f"]}
    renders = [r for split in data["splits"].values() for r in split["renders"]]
    assert {r["render_id"] for r in renders} == placed
    assert all(r["placement"] == "all placed" and (tmp_path / "y" / r["image"]).is_file() for r in renders)
    scenes = [s["name"] for split in data["splits"].values() for s in split["scenes"]]
    assert sorted(scenes) == ["a", "b", "d", "e", "f"]
    assert data["counts"]["images"] == 5 and data["counts"]["labels"] == 10
    assert data["left_out"] == [
        {"reason": "not checked", "renders": 1, "instances": 2, "missed": 0},
        {"reason": "missed instances", "renders": 2, "instances": 4, "missed": 2},
    ]


@pytest.mark.parametrize(
    ("scenes", "ratios", "expected"),
    [
        (10, SplitRatios(0.8, 0.1, 0.1), {"train": 8, "val": 1, "test": 1}),
        (3, SplitRatios(0.8, 0.1, 0.1), {"train": 1, "val": 1, "test": 1}),  # each share gets a scene first
        (2, SplitRatios(0.9, 0.1), {"train": 1, "val": 1}),
        (7, SplitRatios(0.5, 0.5), {"train": 4, "val": 3}),
    ],
)
def test_scene_counts_follow_the_ratios_and_every_share_gets_a_scene(
    scenes: int, ratios: SplitRatios, expected: dict[str, int]
) -> None:
    plan = plan_splits(range(100, 100 + scenes), ratios, seed=5, format="yolo")
    assert {name: len(plan.scenes(name)) for name in plan.names} == expected
    assert plan == plan_splits(reversed(range(100, 100 + scenes)), ratios, seed=5, format="yolo")  # order-free
