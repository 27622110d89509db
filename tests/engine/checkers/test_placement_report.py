"""engine.placement_report: thresholds refuse what is not a 0..1 number, reports round-trip through their
stored form, a malformed stored report is a PlacementDataError, and placement is judged by the thresholds given."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from engine.placement_report import InstancePlacement, PlacementDataError, PlacementReport, PlacementThresholds


@pytest.mark.parametrize(
    ("iou", "score", "message"),
    [
        (-0.1, 0.2, "the iou threshold must be between 0 and 1, not -0.1"),
        (0.5, 1.5, "the score threshold must be between 0 and 1, not 1.5"),
        (math.nan, 0.2, "the iou threshold must be a number, not nan"),
        (0.5, math.inf, "the score threshold must be a number, not inf"),
        (True, 0.2, "the iou threshold must be a number, not True"),
        ("0.5", 0.2, "the iou threshold must be a number, not '0.5'"),
    ],
)
def test_thresholds_refuse_what_is_not_a_unit_number(iou: Any, score: Any, message: str) -> None:
    with pytest.raises(PlacementDataError) as caught:
        PlacementThresholds(iou=iou, score=score)
    assert str(caught.value) == message


def test_thresholds_take_the_ends_of_the_range_and_fill_defaults() -> None:
    assert PlacementThresholds(0, 1).to_dict() == {"iou": 0.0, "score": 1.0}
    assert PlacementThresholds.from_dict({"score": 0.3}) == PlacementThresholds(iou=0.5, score=0.3)
    with pytest.raises(PlacementDataError, match="iou threshold"):
        PlacementThresholds.from_dict({"iou": 2})


def report() -> PlacementReport:
    return PlacementReport(
        "owlv2:tiny",
        (
            InstancePlacement(True, iou=0.9, score=0.8, box=(0.1, 0.2, 0.3, 0.4)),
            InstancePlacement(True, iou=0.55, score=0.25, box=(0.5, 0.5, 0.9, 0.95)),
            InstancePlacement(False),
        ),
        PlacementThresholds(0.5, 0.2),
    )


def test_a_report_round_trips_through_json() -> None:
    original = report()
    stored = json.loads(json.dumps(original.to_dict()))
    assert PlacementReport.from_dict(stored) == original
    assert stored["instances"][2] == {"found": False, "iou": 0.0, "score": 0.0}  # no box when none was found


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a placement report must be an object"),
        ({"instances": []}, "needs a checker name and a list of instances"),
        ({"checker": "x", "instances": {}}, "needs a checker name and a list of instances"),
        ({"checker": "x", "instances": [], "thresholds": [0.5]}, "thresholds must be an object"),
        ({"checker": "x", "instances": [], "thresholds": {"iou": -1}}, "between 0 and 1"),
        ({"checker": "x", "instances": ["found"]}, "an instance's placement must be an object"),
        ({"checker": "x", "instances": [{"found": True, "iou": "high"}]}, "a placement iou must be a number"),
        ({"checker": "x", "instances": [{"found": True, "score": None}]}, "a placement score must be a number"),
        ({"checker": "x", "instances": [{"found": True, "box": [0, 0, 1]}]}, "a found box must have 4 numbers"),
        ({"checker": "x", "instances": [{"found": True, "box": [0, 0, 1, "a"]}]}, "a placement box must be"),
        ({"checker": "x", "instances": [{"found": True, "iou": math.nan}]}, "a placement iou must be a number"),
    ],
)
def test_a_malformed_stored_report_is_a_placement_data_error(data: Any, message: str) -> None:
    with pytest.raises(PlacementDataError, match=message):
        PlacementReport.from_dict(data)


def test_stored_figures_out_of_range_are_clamped_not_trusted() -> None:
    inst = InstancePlacement.from_dict({"found": True, "iou": 1.5, "score": -0.2, "box": [-0.1, 0, 1.2, 1]})
    assert (inst.iou, inst.score, inst.box) == (1.0, 0.0, (0.0, 0.0, 1.0, 1.0))


def test_missed_rank_and_summary_follow_the_thresholds_given() -> None:
    checked = report()
    # By its own thresholds (0.5, 0.2): only the one not found misses.
    assert checked.missed() == (2,)
    assert checked.summary() == "1 of 3 missed"
    assert not checked.all_placed()
    # Stricter: the second's overlap (0.55) and score (0.25) are no longer enough.
    assert checked.missed(PlacementThresholds(iou=0.6)) == (1, 2)
    assert checked.missed(PlacementThresholds(iou=0.5, score=0.3)) == (1, 2)
    assert checked.summary(PlacementThresholds(iou=0.95)) == "3 of 3 missed"
    # Lenient thresholds never place an instance that was not found.
    assert checked.missed(PlacementThresholds(0.0, 0.0)) == (2,)
    everything = PlacementReport("shape-world", checked.instances[:2])
    assert everything.summary() == "all placed" and everything.all_placed()
    assert everything.summary(PlacementThresholds(iou=0.6)) == "1 of 2 missed"


def test_rank_puts_all_placed_first_then_more_placed_then_overlap() -> None:
    def make(*ious: float) -> PlacementReport:
        return PlacementReport("x", tuple(InstancePlacement(True, iou=v, score=1.0) for v in ious))

    all_placed, one_missed_high, one_missed_low = make(0.6, 0.6), make(0.99, 0.4), make(0.9, 0.1)
    ranked = sorted([one_missed_low, all_placed, one_missed_high], key=lambda r: r.rank(), reverse=True)
    assert ranked == [all_placed, one_missed_high, one_missed_low]
    # With a lower IoU threshold every one is placed: the mean overlap decides.
    lenient = PlacementThresholds(iou=0.05)
    assert max([all_placed, one_missed_high, one_missed_low], key=lambda r: r.rank(lenient)) is one_missed_high
    assert PlacementReport("x", ()).rank() == (1, 0, 1.0)
