"""Smoke test: each benchmark script runs end to end on the tiny model and prints its ratio line.

Speed is never asserted (the scripts measure it; a test machine's timings mean nothing). A script returns
non-zero when its two paths disagree numerically, so this also checks that they agree on the tiny model.
"""

from __future__ import annotations

import pytest

from benchmarks import mis_batching, pipeline_overhead

TINY = ["--size", "tiny", "--steps", "2", "--repeats", "1"]


def test_mis_batching_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert mis_batching.main([*TINY, "--instances", "2", "3", "--mis", "0.5", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "speed-up (one chain at a time / batched):" in out
    assert "same latents on both paths (relative L2 < 1e-05): yes" in out


def test_pipeline_overhead_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert pipeline_overhead.main(TINY) == 0
    out = capsys.readouterr().out
    assert "overhead (ours, cache cleared / diffusers - 1):" in out
    assert "latents agree (max |delta| <= 1e-05): yes" in out
