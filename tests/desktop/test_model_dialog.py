"""The model-files dialog against real files: the check runs in the background and OK/Cancel touch the file or not."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog, QDialogButtonBox
from pytestqt.qtbot import QtBot

from desktop.background import active_tasks, wait_all
from desktop.model_dialog import ModelSettingsDialog
from engine.model_check import Check, check_model_settings
from engine.model_settings import ModelSettings
from tests.engine.tiny_sd import build_tiny_sd, write_diffusers_folder

CHECK_TIMEOUT_MS = 60_000  # the first check imports torch on a busy machine


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_diffusers_folder(build_tiny_sd(), tmp_path_factory.mktemp("diffusers") / "stable-diffusion-v1-5")


@pytest.fixture(autouse=True)
def no_check_left_running() -> Iterator[None]:
    """Closing a dialog cancels its check, but the check itself (it may be importing torch) runs to its end:
    wait for it here, where it is expected, rather than have the leak guard report it."""
    yield
    assert wait_all(CHECK_TIMEOUT_MS / 1000)


@pytest.fixture
def settings_file(tmp_path: Path) -> Path:
    return tmp_path / "home" / "models.json"


def open_dialog(qtbot: QtBot, settings_file: Path) -> ModelSettingsDialog:
    dialog = ModelSettingsDialog(settings_file, demo_dir=settings_file.parent / "no-demo")
    qtbot.addWidget(dialog)
    dialog.show()
    wait_for_checks(qtbot, dialog)
    return dialog


def wait_for_checks(qtbot: QtBot, dialog: ModelSettingsDialog) -> None:
    qtbot.waitUntil(lambda: not dialog.is_checking(), timeout=CHECK_TIMEOUT_MS)


def row_for(dialog: ModelSettingsDialog, part: str) -> Check:
    (row,) = [row for row in dialog.check_rows() if row.check.part == part]
    return row.check


def click(qtbot: QtBot, dialog: ModelSettingsDialog, button: QDialogButtonBox.StandardButton) -> None:
    QTest.mouseClick(dialog.buttons.button(button), Qt.MouseButton.LeftButton)


def test_a_missing_path_is_named_then_a_diffusers_folder_passes_and_ok_saves(
    qtbot: QtBot, settings_file: Path, sd_folder: Path, tmp_path: Path
) -> None:
    dialog = open_dialog(qtbot, settings_file)
    assert not row_for(dialog, "sd15").ok  # nothing set yet

    missing = tmp_path / "no such folder"
    QTest.keyClicks(dialog.sd15_edit, str(missing))
    qtbot.waitUntil(
        lambda: any(not row.check.ok and str(missing) in row.text() for row in dialog.check_rows()),
        timeout=CHECK_TIMEOUT_MS,
    )
    assert row_for(dialog, "sd15").message == f"not found: {missing}"

    dialog.sd15_edit.setText(str(sd_folder))
    dialog.device_combo.setCurrentText("cpu")
    dialog.dtype_combo.setCurrentText("fp32")
    wait_for_checks(qtbot, dialog)
    sd15 = row_for(dialog, "sd15")
    assert sd15.ok and str(sd_folder) in sd15.message
    assert row_for(dialog, "device").ok

    click(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    assert dialog.result() == QDialog.DialogCode.Accepted
    saved = json.loads(settings_file.read_text())
    assert saved["sd15"] == str(sd_folder) and saved["adapter"] is None
    assert (saved["device"], saved["dtype"]) == ("cpu", "fp32")


def test_cancel_leaves_the_file_unchanged(qtbot: QtBot, settings_file: Path, sd_folder: Path) -> None:
    ModelSettings(sd15=sd_folder, device="cpu").save(settings_file)
    before = settings_file.read_bytes()
    dialog = open_dialog(qtbot, settings_file)
    assert dialog.sd15_edit.text() == str(sd_folder) and dialog.device_combo.currentText() == "cpu"

    dialog.sd15_edit.setText("/elsewhere")
    dialog.dtype_combo.setCurrentText("bf16")
    click(qtbot, dialog, QDialogButtonBox.StandardButton.Cancel)
    assert dialog.result() == QDialog.DialogCode.Rejected
    assert settings_file.read_bytes() == before


def test_use_the_demo_model_clears_both_fields(qtbot: QtBot, settings_file: Path, sd_folder: Path) -> None:
    ModelSettings(sd15=sd_folder, adapter=sd_folder / "adapter.safetensors").save(settings_file)
    dialog = open_dialog(qtbot, settings_file)
    assert not row_for(dialog, "adapter").ok  # that adapter file does not exist

    QTest.mouseClick(dialog.demo_button, Qt.MouseButton.LeftButton)
    assert dialog.sd15_edit.text() == "" and dialog.adapter_edit.text() == ""
    wait_for_checks(qtbot, dialog)
    demo = row_for(dialog, "demo")
    assert "demo model" in demo.message and not demo.ok  # this test's demo folder is empty

    click(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    saved = json.loads(settings_file.read_text())
    assert saved["sd15"] is None and saved["adapter"] is None


def test_an_invalid_device_is_shown_inline_and_disables_ok(qtbot: QtBot, settings_file: Path) -> None:
    dialog = open_dialog(qtbot, settings_file)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    dialog.device_combo.setCurrentText("gpu")
    assert not ok.isEnabled()
    assert dialog.error_label.isVisible() and "device must be one of" in dialog.error_label.text()
    dialog.accept()  # Enter in a field must not save invalid values either
    assert not settings_file.exists()

    dialog.device_combo.setCurrentText("cpu")
    assert ok.isEnabled() and not dialog.error_label.isVisible()
    wait_for_checks(qtbot, dialog)
    assert row_for(dialog, "device").ok


def test_typing_is_checked_once_after_a_pause(
    qtbot: QtBot, settings_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialog = open_dialog(qtbot, settings_file)
    seen: list[ModelSettings] = []

    def counting(settings: ModelSettings, *, demo_dir: Path | None = None) -> list[Check]:
        seen.append(settings)
        return check_model_settings(settings, demo_dir=demo_dir)

    monkeypatch.setattr("desktop.model_dialog.check_model_settings", counting)
    QTest.keyClicks(dialog.adapter_edit, str(tmp_path / "typed.safetensors"))
    wait_for_checks(qtbot, dialog)
    assert [s.adapter for s in seen] == [tmp_path / "typed.safetensors"]
    assert row_for(dialog, "adapter").message == f"file missing: {tmp_path / 'typed.safetensors'}"


def test_a_result_for_older_values_is_ignored(qtbot: QtBot, settings_file: Path) -> None:
    dialog = open_dialog(qtbot, settings_file)
    shown = dialog.checks()
    stale_serial = dialog._serial
    dialog.sd15_edit.setText("/somewhere/new")  # a newer check is now due
    dialog._check_finished(stale_serial, [Check("sd15", "stale", True)])
    assert dialog.checks() == shown and dialog.is_checking()
    wait_for_checks(qtbot, dialog)
    assert row_for(dialog, "sd15").message == "not found: /somewhere/new"


def test_a_broken_settings_file_is_reported_and_replaced_on_ok(qtbot: QtBot, settings_file: Path) -> None:
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text("{not json")
    dialog = open_dialog(qtbot, settings_file)
    assert dialog.load_problem_label.isVisible() and "not valid JSON" in dialog.load_problem_label.text()
    click(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    assert ModelSettings.load(settings_file) == ModelSettings()


def test_a_check_that_raises_shows_as_a_failed_check(
    qtbot: QtBot, settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(settings: ModelSettings, *, demo_dir: Path | None = None) -> list[Check]:
        raise RuntimeError("a bug")

    monkeypatch.setattr("desktop.model_dialog.check_model_settings", broken)
    dialog = open_dialog(qtbot, settings_file)
    assert row_for(dialog, "check").message == "the check itself failed: RuntimeError: a bug"
    assert not row_for(dialog, "check").ok


def test_closing_the_dialog_cancels_the_check_in_flight(
    qtbot: QtBot, settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()

    def slow(settings: ModelSettings, *, demo_dir: Path | None = None) -> list[Check]:
        gate.wait(10)
        return [Check("sd15", "too late", True)]

    monkeypatch.setattr("desktop.model_dialog.check_model_settings", slow)
    dialog = ModelSettingsDialog(settings_file, demo_dir=settings_file.parent / "no-demo")
    qtbot.addWidget(dialog)
    dialog.show()
    (task,) = active_tasks(dialog)
    click(qtbot, dialog, QDialogButtonBox.StandardButton.Cancel)
    assert task.cancelled  # its function still runs (and stays listed) until it returns
    gate.set()
    assert task.wait(10)
    qtbot.wait(50)
    assert dialog.checks() == [] and task not in active_tasks()


def test_ok_keeps_the_bases_loras_and_low_memory_it_has_no_fields_for(
    qtbot: QtBot, settings_file: Path, sd_folder: Path, tmp_path: Path
) -> None:
    kept = {"bases": {"anime": tmp_path / "anime.safetensors"}, "loras": {"ink": tmp_path / "ink.safetensors"}}
    ModelSettings(sd15=sd_folder, device="cpu", low_memory=True, **kept).save(settings_file)  # type: ignore[arg-type]
    dialog = open_dialog(qtbot, settings_file)
    dialog.dtype_combo.setCurrentText("fp32")
    wait_for_checks(qtbot, dialog)
    click(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    saved = ModelSettings.load(settings_file)
    assert (saved.dtype, saved.low_memory, dict(saved.bases), dict(saved.loras)) == ("fp32", True, *kept.values())


def test_the_placement_checker_folder_is_checked_shown_and_saved(
    qtbot: QtBot, settings_file: Path, tmp_path: Path
) -> None:
    not_a_detector = tmp_path / "clip-text"
    not_a_detector.mkdir()
    (not_a_detector / "config.json").write_text(json.dumps({"model_type": "clip_text_model"}))
    ModelSettings(checker=tmp_path / "gone").save(settings_file)
    dialog = open_dialog(qtbot, settings_file)
    assert dialog.checker_edit.text() == str(tmp_path / "gone")
    assert row_for(dialog, "checker").message == f"{tmp_path / 'gone'}: folder not found"

    dialog.checker_edit.setText(str(not_a_detector))
    wait_for_checks(qtbot, dialog)
    (row,) = [row for row in dialog.check_rows() if row.check.part == "checker"]
    assert not row.check.ok and row.hint_label is not None
    assert row.text().startswith(f"Placement checker: {not_a_detector}: a 'clip_text_model' model, not an")
    click(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    assert json.loads(settings_file.read_text())["checker"] == str(not_a_detector)

    dialog = open_dialog(qtbot, settings_file)
    dialog.checker_edit.clear()  # optional: unset, there is nothing to check
    wait_for_checks(qtbot, dialog)
    assert "checker" not in {row.check.part for row in dialog.check_rows()}
    click(qtbot, dialog, QDialogButtonBox.StandardButton.Ok)
    assert "checker" not in json.loads(settings_file.read_text())
