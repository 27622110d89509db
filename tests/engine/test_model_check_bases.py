"""`models verify` and the settings dialog check each configured fine-tuned base as SD1.5 is checked (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

import main
from engine.model_check import check_model_settings
from engine.model_settings import ModelSettings
from engine.weights_io import write_safetensors_atomic
from tests.engine.tiny_sd import TinySd, ldm_single_file_state


@pytest.fixture
def bases(tiny: TinySd, sd_folder: Path, tmp_path: Path) -> dict[str, Path]:
    single = tmp_path / "tune.safetensors"
    write_safetensors_atomic(ldm_single_file_state(tiny), single)
    incomplete = tmp_path / "incomplete"
    (incomplete / "unet").mkdir(parents=True)
    (incomplete / "model_index.json").write_text("{}")
    return {
        "folder tune": sd_folder,
        "single": single,
        "gone": tmp_path / "gone.safetensors",
        "incomplete": incomplete,
        "text": tmp_path,  # a folder that is no model at all
    }


def test_each_base_is_checked_without_loading_weights(bases: dict[str, Path]) -> None:
    checks = {c.part: c for c in check_model_settings(ModelSettings(bases=bases))}
    assert checks["base:folder tune"].ok and checks["base:folder tune"].message.endswith("(diffusers)")
    assert checks["base:single"].ok and checks["base:single"].message.endswith("(single file)")
    assert checks["base:single"].title == "Fine-tuned base “single”"
    assert not checks["base:gone"].ok and checks["base:gone"].message == f"not found: {bases['gone']}"
    assert not checks["base:incomplete"].ok and "is missing" in checks["base:incomplete"].message
    assert not checks["base:text"].ok and "model_index.json is missing" in checks["base:text"].message
    for check in checks.values():
        assert "\n" not in check.message


def test_models_verify_prints_a_line_per_base(
    bases: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCE_STUDIO_HOME", str(tmp_path / "home"))
    assert main.main(["models", "set", "--base", f"mine={bases['single']}", "--base", f"gone={bases['gone']}"]) == 1
    out = capsys.readouterr().out
    assert f"ok       base:mine {bases['single']} (single file)" in out
    assert f"PROBLEM  base:gone not found: {bases['gone']}" in out
