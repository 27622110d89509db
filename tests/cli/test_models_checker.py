"""The placement checker's folder in the model settings: `models set --checker` ('' unsets), `models list` and
`models verify` show and check it, and the settings file keeps it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import CLIPTextConfig

import main
from engine.model_settings import ModelSettings, ModelSettingsError
from tests.engine.checkers.tiny_detectors import save_tiny_owlv2


@pytest.fixture(scope="module")
def owlv2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_owlv2(tmp_path_factory.mktemp("owl") / "tiny-owl")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INSTANCE_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def saved(home: Path) -> dict[str, object]:
    return dict(json.loads((home / "models.json").read_text()))


def test_set_verify_list_and_unset_the_checker(
    home: Path, owlv2_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main.main(["models", "set", "--checker", str(owlv2_folder)])  # exit 1: SD1.5 and the adapter are not set
    assert saved(home)["checker"] == str(owlv2_folder)
    out = capsys.readouterr().out
    assert f"ok       checker  {owlv2_folder} (OWLv2, a zero-shot detector; reports say owlv2:tiny-owl)" in out
    assert main.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"checker  {owlv2_folder} (OWLv2" in out and "placement checker: not set" not in out

    main.main(["models", "set", "--checker", ""])
    assert "checker" not in saved(home)
    assert "checker" not in capsys.readouterr().out
    main.main(["models", "list"])
    assert "placement checker: not set" in capsys.readouterr().out


def test_a_relative_checker_path_is_stored_absolute(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    main.main(["models", "set", "--checker", "detectors/owl"])
    assert saved(home)["checker"] == str(tmp_path / "detectors" / "owl")


def test_verify_says_what_is_wrong_with_the_checker(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    CLIPTextConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4).save_pretrained(
        tmp_path / "clip"
    )
    main.main(["models", "set", "--checker", str(tmp_path / "clip")])
    capsys.readouterr()
    assert main.main(["models", "verify"]) == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if " checker " in line)
    assert line.startswith("PROBLEM  checker")
    assert "a 'clip_text_model' model, not an open-vocabulary detector" in line
    assert "`python main.py models set --checker FOLDER`" in line

    main.main(["models", "set", "--checker", str(tmp_path / "gone")])
    assert f"{tmp_path / 'gone'}: folder not found" in capsys.readouterr().out


def test_an_empty_path_unsets_sd15_too(home: Path, tmp_path: Path) -> None:
    main.main(["models", "set", "--sd15", str(tmp_path / "sd15"), "--adapter", str(tmp_path / "a.safetensors")])
    main.main(["models", "set", "--sd15", "", "--adapter", ""])
    assert saved(home)["sd15"] is None and saved(home)["adapter"] is None


def test_the_settings_file_keeps_the_checker(tmp_path: Path) -> None:
    file = tmp_path / "models.json"
    settings = ModelSettings(device="cpu", checker=tmp_path / "owl")
    settings.save(file)
    assert ModelSettings.load(file) == settings
    ModelSettings().save(file)
    # Unset, the key is left out: the file still opens in versions that do not know it.
    assert "checker" not in json.loads(file.read_text()) and ModelSettings.load(file).checker is None


@pytest.mark.parametrize("bad", [3, "", "  ", ["/x"]])
def test_a_checker_that_is_not_a_path_is_a_clear_error(tmp_path: Path, bad: object) -> None:
    file = tmp_path / "models.json"
    file.write_text(json.dumps({"version": 1, "checker": bad}))
    with pytest.raises(ModelSettingsError, match=r"models\.json: 'checker' must be a path"):
        ModelSettings.load(file)
