"""The detector checker on tiny randomly initialised OWLv2 and Grounding DINO folders: loaded offline, every
instance gets an entry with a normalised box, what is found follows the score threshold, the region chosen is
the candidate that best matches the requested location; and every broken folder is one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from transformers import CLIPTextConfig, OwlViTConfig

from engine.checkers.base import box_overlap
from engine.checkers.detector import DetectorChecker, load_detector
from engine.checkers.detector_files import CheckerFilesError, inspect_checker_folder
from engine.checkers.selection import checker_for, forget_loaded_detectors
from engine.checkers.shape_world import ShapeWorldChecker
from engine.model_check import check_model_settings
from engine.model_settings import ModelSettings
from engine.placement_report import PlacementThresholds
from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest
from tests.engine.checkers.tiny_detectors import (
    DINO_QUERIES,
    OWL_QUERIES,
    save_tiny_grounding_dino,
    save_tiny_owlv2,
)


@pytest.fixture(scope="module")
def owlv2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_owlv2(tmp_path_factory.mktemp("owl") / "tiny-owl")


@pytest.fixture(scope="module")
def dino_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_grounding_dino(tmp_path_factory.mktemp("dino") / "tiny-dino")


@pytest.fixture(scope="module")
def owlv2(owlv2_folder: Path) -> DetectorChecker:
    return load_detector(owlv2_folder)


@pytest.fixture(scope="module")
def dino(dino_folder: Path) -> DetectorChecker:
    return load_detector(dino_folder)


def image(height: int = 48, width: int = 64) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def every_kind_request() -> RenderRequest:
    """One instance per location kind; two share a caption (asked for once, each judged on its own)."""
    mask = np.zeros((16, 16), dtype=bool)
    mask[2:9, 3:12] = True
    specs = (
        InstanceSpec("a red circle", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.6)),
        InstanceSpec("a blue square", InstanceKind.POINT, point=(0.7, 0.3)),
        InstanceSpec("a red circle", InstanceKind.SCRIBBLE, scribble=((0.6, 0.6), (0.7, 0.7), (0.8, 0.75))),
        InstanceSpec("a green star", InstanceKind.MASK, mask=MaskRLE.from_bitmap(mask)),
    )
    return RenderRequest(prompt="shapes", width=128, height=96, instances=specs)


@pytest.mark.parametrize(
    ("fixture", "family", "queries"), [("owlv2", "owlv2", OWL_QUERIES), ("dino", "grounding-dino", DINO_QUERIES)]
)
def test_every_instance_gets_an_entry_with_a_normalised_box(
    fixture: str, family: str, queries: int, request: pytest.FixtureRequest
) -> None:
    checker: DetectorChecker = request.getfixturevalue(fixture)
    folder_name = "tiny-owl" if family == "owlv2" else "tiny-dino"
    assert checker.name == f"{family}:{folder_name}"
    req = every_kind_request()
    detections = checker.detect(image(), ["a red circle", "a blue square", "a green star"])
    assert detections.boxes.shape == (queries, 4) and detections.scores.shape == (queries, 3)
    assert ((detections.scores >= 0) & (detections.scores <= 1)).all()
    assert ((detections.boxes >= 0) & (detections.boxes <= 1)).all()

    report = checker.check(image(), req, PlacementThresholds(iou=0.5, score=0.0))
    assert report.checker == checker.name and len(report.instances) == len(req.instances)
    for spec, found in zip(req.instances, report.instances, strict=True):
        assert found.found and found.box is not None  # a score threshold of 0 admits every region
        assert (
            all(0.0 <= v <= 1.0 for v in found.box) and found.box[0] <= found.box[2] and found.box[1] <= found.box[3]
        )
        assert found.iou == pytest.approx(box_overlap(spec, found.box))


def test_the_region_chosen_is_the_candidate_that_best_matches_the_location(owlv2: DetectorChecker) -> None:
    req = every_kind_request()
    captions = ["a red circle", "a blue square", "a green star"]
    detections = owlv2.detect(image(), captions)
    threshold = float(np.median(detections.scores))
    report = owlv2.check(image(), req, PlacementThresholds(score=threshold))
    for spec, found in zip(req.instances, report.instances, strict=True):
        column = detections.scores[:, captions.index(spec.caption)]
        candidates = np.flatnonzero(column >= threshold)
        if candidates.size == 0:
            assert not found.found and found.score == pytest.approx(column.max())
            continue
        best = max(box_overlap(spec, tuple(detections.boxes[q])) for q in candidates)
        assert found.found and found.iou == pytest.approx(best) and found.score >= threshold


@pytest.mark.parametrize("fixture", ["owlv2", "dino"])
def test_what_is_found_follows_the_score_threshold(fixture: str, request: pytest.FixtureRequest) -> None:
    checker: DetectorChecker = request.getfixturevalue(fixture)
    req = every_kind_request()
    captions = ["a red circle", "a blue square", "a green star"]
    best = checker.detect(image(), captions).scores.max(axis=0)  # each caption's best score
    # Between the lowest and the highest caption's best: some are found, some are not.
    cut = float((best.min() + best.max()) / 2)
    assert best.min() < cut < best.max()
    report = checker.check(image(), req, PlacementThresholds(iou=0.0, score=cut))
    for spec, found in zip(req.instances, report.instances, strict=True):
        caption_best = best[captions.index(spec.caption)]
        assert found.found == (caption_best >= cut)
        if not found.found:  # not found: the best the detector gave that caption, below the threshold
            assert found.score == pytest.approx(caption_best) and found.box is None
    assert set(report.missed()) == {i for i, f in enumerate(report.instances) if not f.found}
    nothing = checker.check(image(), req, PlacementThresholds(score=1.0))
    assert not any(f.found for f in nothing.instances)


def test_a_request_without_instances_reports_none(owlv2: DetectorChecker) -> None:
    report = owlv2.check(image(), RenderRequest(prompt="empty", width=128, height=96), PlacementThresholds())
    assert report.instances == () and report.all_placed()


def test_the_selection(owlv2_folder: Path) -> None:
    forget_loaded_detectors()
    with_checker = ModelSettings(device="cpu", checker=owlv2_folder)
    assert isinstance(checker_for("demo", with_checker), ShapeWorldChecker)
    assert checker_for("sd15", ModelSettings()) is None
    assert checker_for("sd15", None) is None
    first = checker_for("sd15", with_checker)
    assert isinstance(first, DetectorChecker) and first.name == "owlv2:tiny-owl"
    assert checker_for("my-base", with_checker) is first  # loaded once per folder, kept
    forget_loaded_detectors()
    with pytest.raises(CheckerFilesError, match="folder not found"):
        checker_for("sd15", ModelSettings(device="cpu", checker=owlv2_folder / "gone"))


def test_the_model_check_names_the_detector(owlv2_folder: Path, dino_folder: Path) -> None:
    for folder, title in ((owlv2_folder, "OWLv2"), (dino_folder, "Grounding DINO")):
        checks = {c.part: c for c in check_model_settings(ModelSettings(checker=folder))}
        assert checks["checker"].ok and title in checks["checker"].message
        assert checks["checker"].title == "Placement checker"
    assert "checker" not in {c.part for c in check_model_settings(ModelSettings())}


# --- broken folders ------------------------------------------------------------------------------------


def copy_of(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / folder.name))


def refused(folder: Path, reason: str) -> str:
    """Loading `folder` fails with one line naming it and `reason`; the model check says the same."""
    with pytest.raises(CheckerFilesError) as caught:
        load_detector(folder)
    message = str(caught.value)
    assert "\n" not in message and str(folder) in message and reason in message, message
    return message


def test_a_missing_folder_or_a_file(tmp_path: Path) -> None:
    refused(tmp_path / "nowhere", "folder not found")
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"x")
    refused(file, "not a folder")
    refused(tmp_path, "no config.json")


def test_a_model_that_is_not_a_detector(tmp_path: Path) -> None:
    CLIPTextConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4).save_pretrained(
        tmp_path
    )
    refused(tmp_path, "a 'clip_text_model' model, not an open-vocabulary detector")
    check = next(c for c in check_model_settings(ModelSettings(checker=tmp_path)) if c.part == "checker")
    assert not check.ok and "not an open-vocabulary detector" in check.message and "--checker" in check.command


def test_a_detector_family_it_does_not_run(tmp_path: Path) -> None:
    OwlViTConfig().save_pretrained(tmp_path)
    refused(tmp_path, "a 'owlvit' detector, which the placement check does not run")


def test_a_config_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    refused(tmp_path, "config.json cannot be read")


def test_corrupt_and_truncated_weights(owlv2_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(owlv2_folder, tmp_path)
    weights = folder / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(b"\x00" * 64)  # garbage: no header
    refused(folder, "model.safetensors: not a readable safetensors file")
    weights.write_bytes(original[: len(original) // 2])  # a header, then half the data
    refused(folder, "model.safetensors: not a readable safetensors file")


def test_pickled_weights_are_refused_unread(owlv2_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(owlv2_folder, tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")  # reading it would fail another way
    refused(folder, "its weights are pickled (pytorch_model.bin), which the app never loads")
    (folder / "pytorch_model.bin").unlink()
    refused(folder, "no weights (model.safetensors)")


def test_weights_of_another_model(owlv2_folder: Path, dino_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(dino_folder, tmp_path)
    shutil.copy(owlv2_folder / "model.safetensors", folder / "model.safetensors")
    assert inspect_checker_folder(folder).family == "grounding-dino"  # the files look right...
    refused(folder, "its weights do not fit its config")  # ...but are not this model's


def test_a_folder_without_its_processor(owlv2_folder: Path, tmp_path: Path) -> None:
    folder = copy_of(owlv2_folder, tmp_path)
    for name in ("processor_config.json", "preprocessor_config.json"):
        (folder / name).unlink(missing_ok=True)
    refused(folder, "no processor files")
