"""Smoke test: each benchmark script runs end to end on the tiny model and prints its ratio line.

Speed is never asserted (the scripts measure it; a test machine's timings mean nothing). A script returns
non-zero when its two paths disagree numerically, so this also checks that they agree on the tiny model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import edit_reuse, editor, live_drag, mis_batching, pipeline_overhead, placement, placement_rerolls

TINY = ["--size", "tiny", "--steps", "2", "--repeats", "1"]


def test_mis_batching_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # One case covers every path: at 2 steps, mis 0.5 makes the first step an MIS step and the second not.
    assert mis_batching.main([*TINY, "--instances", "2", "--mis", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "speed-up (one chain at a time / batched):" in out
    assert "same latents on both paths (relative L2 < 1e-05): yes" in out


def test_pipeline_overhead_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert pipeline_overhead.main(TINY) == 0
    out = capsys.readouterr().out
    assert "overhead (ours, cache cleared / diffusers - 1):" in out
    assert "latents agree (max |delta| <= 1e-05): yes" in out


def test_placement_runs_on_a_saved_demo_model(
    untrained_demo_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        placement.main(
            [
                *("--model", str(untrained_demo_model), "--layouts", "1", "--steps", "2", "--edits", "1"),
                *("--time-steps", "2", "--canvas-layouts", "1", "--figure", str(tmp_path / "figure.png")),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "placement over 1 held-out layouts" in out and "MIS off" in out and "edit locality" in out
    assert "boxes on 96x64 canvases (1 layouts)" in out and "right shape" in out
    from PIL import Image

    with Image.open(tmp_path / "figure.png") as figure:
        assert figure.size == (8 * 196, 2 * 192 + 4)
    assert "4 instances, 2 steps" in out and "50 steps" not in out  # only the step counts asked for are timed
    assert placement.main(["--model", str(tmp_path / "none")]) == 1


def test_edit_reuse_runs_on_a_saved_demo_model(
    untrained_demo_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    # mis 0.5: at 2 steps the default 0.36 runs no MIS step, so there would be no chain to reuse. One thread:
    # these renders are tiny, and several threads waiting on each other on a busy machine cost 3x here.
    args = [*TINY, "--mis", "0.5", "--instances", "3", "--warm-ups", "0", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        assert edit_reuse.main([*args, "--model", str(untrained_demo_model)]) == 0
    finally:
        torch.set_num_threads(threads)  # the script sets it for the whole process
    out = capsys.readouterr().out
    assert "speed-up (first render / re-render after moving one instance): demo 3 inst." in out
    assert "tiny 3 inst." in out and "2 of 3" in out
    assert "re-render equals a render from nothing (max |d pixel| <= 1e-05): yes" in out
    assert "reused every unchanged chain (n - 1 of n) and no other: yes" in out
    assert edit_reuse.main(["--model", str(tmp_path / "none")]) == 1


def test_editor_benchmark_runs(qapp: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert editor.main(["--scenes", "3", "--instances", "4", "--redraws", "2"]) == 0
    out = capsys.readouterr().out
    assert "open 3 scenes x 4 inst. (vs 1 empty)" in out and "redraw a 4-instance scene (vs empty)" in out


def test_live_drag_runs(
    qapp: object, untrained_demo_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shot = tmp_path / "live.png"
    args = ["--seconds", "1", "--steps", "2", "--model", str(untrained_demo_model), "--screenshot", str(shot)]
    assert live_drag.main(args) == 0  # previews arrived and the last one is of the final geometry
    out = capsys.readouterr().out
    assert "previews shown per second:" in out and "latency, last move -> preview of it:" in out
    assert "GUI event loop stall" in out and "last preview matches the final geometry:  yes" in out
    assert shot.is_file()
    assert live_drag.main(["--model", str(tmp_path / "none")]) == 1


def test_placement_rerolls_runs(
    untrained_demo_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--model", str(untrained_demo_model), "--layouts", "1", "--until-placed", "2", "--steps", "2"]
    assert placement_rerolls.main(args) == 0
    out = capsys.readouterr().out
    assert "re-roll until placed over 1 held-out layouts (boxes), at most 2 seeds, 2 steps" in out
    assert "fully placed at the first seed:" in out and "renders per scene (mean):" in out
    assert "time per placed scene:" in out and "failed jobs: 0, renders not checked: 0" in out
    assert placement_rerolls.main(["--model", str(tmp_path / "none")]) == 1
