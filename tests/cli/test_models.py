"""`models convert` end to end, with a full-size official-layout checkpoint that costs almost no disk."""

import json
from pathlib import Path

import pytest
import torch

import main
from engine.checkpoint import read_adapter
from tests.engine.parity import model_shapes


def write_full_size_official(path: Path) -> None:
    """Every official key at its real shape, all views of one tiny storage, so the file stays small."""
    seed = torch.full((1,), 0.25, dtype=torch.float16)
    state = {k: seed.expand(shape) if shape else seed[0] for k, shape in model_shapes().items()}
    torch.save({"ema": state, "iters": 1}, path)


def test_convert_writes_a_verified_adapter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "instancediffusion_sd15.pth"
    write_full_size_official(source)
    out = tmp_path / "adapter.safetensors"
    assert main.main(["models", "convert", str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "513 tensors, 368,812,473 parameters" in printed
    adapter = read_adapter(out)  # hash checked against the manifest
    assert len(adapter) == 513
    manifest = json.loads(out.with_name(out.name + ".manifest.json").read_text())
    assert manifest["source_name"] == source.name
    assert main.main(["models", "convert", str(source), "--out", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err


def test_convert_reports_a_missing_file_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["models", "convert", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "a.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.pth: file not found" in err and err.count("\n") == 1


def test_convert_refuses_a_checkpoint_of_the_wrong_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.engine.tiny_models import tiny_unet, to_official_layout

    source = tmp_path / "tiny.pth"
    torch.save({"ema": to_official_layout(tiny_unet())}, source)
    out = tmp_path / "a.safetensors"
    assert main.main(["models", "convert", str(source), "--out", str(out)]) == 1
    assert "tiny.pth" in capsys.readouterr().err
    assert not out.exists()
