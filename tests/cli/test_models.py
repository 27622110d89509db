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
    from tests.engine.tiny_sd import tiny_unet, unet_to_ldm

    source = tmp_path / "tiny.pth"
    torch.save({"ema": unet_to_ldm(tiny_unet().state_dict())}, source)
    out = tmp_path / "a.safetensors"
    assert main.main(["models", "convert", str(source), "--out", str(out)]) == 1
    assert "tiny.pth" in capsys.readouterr().err
    assert not out.exists()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INSTANCE_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_list_and_verify_with_nothing_configured(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "sd15     not set" in out and "adapter  not set" in out
    assert main.main(["models", "verify"]) == 1
    assert "PROBLEM  sd15" in capsys.readouterr().out


def test_set_verify_and_a_tampered_adapter(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.engine.tiny_sd import build_tiny_sd, write_diffusers_folder

    sd15 = write_diffusers_folder(build_tiny_sd(), tmp_path / "sd15")
    source = tmp_path / "instancediffusion_sd15.pth"
    write_full_size_official(source)
    adapter = tmp_path / "adapter.safetensors"
    assert main.main(["models", "convert", str(source), "--out", str(adapter)]) == 0
    assert "set as the adapter" in capsys.readouterr().out
    assert main.main(["models", "set", "--sd15", str(sd15), "--device", "cpu", "--dtype", "fp32"]) == 0
    out = capsys.readouterr().out
    assert f"ok       sd15     {sd15} (diffusers)" in out
    assert "ok       adapter" in out and "SHA-256 matches its manifest" in out
    assert json.loads((home / "models.json").read_text())["device"] == "cpu"

    with adapter.open("r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\x00")
    assert main.main(["models", "verify"]) == 1
    assert "SHA-256 does NOT match its manifest" in capsys.readouterr().out


def test_set_refuses_bad_values_and_keeps_the_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["models", "set", "--dtype", "fp32"]) == 1  # saved; sd15 and adapter still unset
    capsys.readouterr()
    assert main.main(["models", "set", "--dtype", "fp99"]) == 1
    assert "dtype must be one of auto, fp16, bf16, fp32, not 'fp99'" in capsys.readouterr().err
    assert json.loads((home / "models.json").read_text())["dtype"] == "fp32"


def test_a_broken_settings_file_is_a_clear_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home.mkdir(parents=True)
    (home / "models.json").write_text("{not json")
    assert main.main(["models", "list"]) == 1
    assert "models.json" in capsys.readouterr().err


def test_set_names_bases_and_loras_and_low_memory(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, lora = tmp_path / "anime.safetensors", tmp_path / "ink.safetensors"
    main.main(
        ["models", "set", "--base", f"anime={base}", "--lora", f"ink={lora}", "--lora", "x=y", "--low-memory", "on"]
    )
    saved = json.loads((home / "models.json").read_text())
    assert saved["bases"] == {"anime": str(base)} and saved["low_memory"] is True
    assert set(saved["loras"]) == {"ink", "x"}
    capsys.readouterr()
    assert main.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned bases:" in out and f"anime            {base}" in out and "low memory: on" in out
    main.main(["models", "set", "--lora", "x="])  # NAME= removes it
    assert set(json.loads((home / "models.json").read_text())["loras"]) == {"ink"}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--base", "sd15=/m"], "a base may not be called 'sd15'"),
        (["--base", "demo=/m"], "a base may not be called 'demo'"),
        (["--lora", "../evil=/m"], "LoRA name '../evil' must be 1-64 letters"),
        (["--lora", "noequals"], "--lora takes NAME=PATH"),
        (["--base", "gone="], "there is no base called 'gone'"),
    ],
)
def test_set_refuses_bad_names_in_one_line(
    home: Path, capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    assert main.main(["models", "set", *option]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (home / "models.json").exists()


@pytest.mark.parametrize(
    "bad",
    [{"bases": []}, {"bases": {"a": 3}}, {"loras": {"": "/x"}}, {"low_memory": "yes"}, {"loras": {"a/b": "/x"}}],
)
def test_a_settings_file_with_bad_bases_or_loras_is_a_clear_error(home: Path, bad: dict[str, object]) -> None:
    from engine.model_settings import ModelSettings, ModelSettingsError

    home.mkdir(parents=True)
    (home / "models.json").write_text(json.dumps({"version": 1, **bad}))
    with pytest.raises(ModelSettingsError, match=r"models\.json"):
        ModelSettings.load(home / "models.json")
