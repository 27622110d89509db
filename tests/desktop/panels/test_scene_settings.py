"""The scene settings panel on a scene editor, without a window: typing, sampler overrides, size, seed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QToolButton
from pytestqt.qtbot import QtBot

from desktop.editor.scene_editor import SceneEditor
from desktop.panels.scene_settings import SceneSettingsPanel
from engine.model_settings import ModelSettings
from engine.request import LoraWeight
from projects.scene_data import SceneData, scene_request
from projects.scene_settings import ProjectDefaults


@pytest.fixture
def editor() -> SceneEditor:
    return SceneEditor(SceneData(1, "scene 1", "caption 1", seed=5))


@pytest.fixture
def panel(qtbot: QtBot, editor: SceneEditor) -> Iterator[SceneSettingsPanel]:
    widget = SceneSettingsPanel()
    qtbot.addWidget(widget)
    widget.set_defaults(ProjectDefaults.default())
    widget.set_editor(editor)
    widget.show()
    yield widget
    widget.set_editor(None)


def test_typing_a_caption_is_one_undo_step(qtbot: QtBot, panel: SceneSettingsPanel, editor: SceneEditor) -> None:
    panel.caption.setFocus()
    panel.caption.selectAll()
    qtbot.keyClicks(panel.caption, "a dog in a park")
    assert editor.scene.caption == "a dog in a park" and editor.undo_stack.count() == 1
    editor.undo_stack.undo()
    assert editor.scene.caption == "caption 1"
    assert panel.caption.toPlainText() == "caption 1"


def test_sampler_settings_are_scene_overrides_until_reset(panel: SceneSettingsPanel, editor: SceneEditor) -> None:
    panel.steps.setValue(30)
    panel.mis.setValue(0.0)
    assert editor.scene.settings.to_overrides() == {"steps": 30, "mis": 0.0}
    assert panel.steps.property("overridden") and panel.reset.isEnabled()
    panel.steps.setValue(50)  # the project default: no longer an override
    assert editor.scene.settings.to_overrides() == {"mis": 0.0}
    panel.seed_mode.setCurrentIndex(1)
    panel.seed_mode.activated.emit(1)
    panel.reset.click()
    assert editor.scene.settings.to_overrides() == {"seed_mode": "random"}  # the seed mode is not a sampler setting
    assert panel.mis.value() == 0.36 and not panel.reset.isEnabled()


def test_sizes_are_multiples_of_64_and_the_dice_draws_a_seed(panel: SceneSettingsPanel, editor: SceneEditor) -> None:
    panel.width_spin.setValue(600)
    assert editor.scene.width == 576
    assert panel.size_preset.currentText() == "Custom"
    panel.width_spin.setValue(512)
    assert panel.size_preset.currentText() == "512 × 512"
    panel.dice.click()
    assert editor.scene.seed != 5
    editor.undo_stack.undo()
    assert editor.scene.seed == 5 and panel.seed.value() == 5


def test_no_scene_disables_the_panel(panel: SceneSettingsPanel) -> None:
    panel.set_editor(None)
    assert not panel.isEnabled()


def scene_loras(editor: SceneEditor) -> tuple[LoraWeight, ...]:
    return editor.scene.settings.loras


def test_loras_are_added_from_the_model_settings_weighted_and_removed(
    panel: SceneSettingsPanel, editor: SceneEditor
) -> None:
    panel.lora_names = lambda: ["ink", "detail"]
    menu = panel.add_lora.menu()
    menu.aboutToShow.emit()
    assert [action.text() for action in menu.actions()] == ["ink", "detail"]
    menu.actions()[0].trigger()
    assert scene_loras(editor) == (LoraWeight("ink", 1.0),)
    panel.lora_rows["ink"][1].setValue(0.6)
    panel.add_lora_named("detail")
    assert scene_loras(editor) == (LoraWeight("ink", 0.6), LoraWeight("detail", 1.0))
    menu.aboutToShow.emit()
    assert [a.isEnabled() for a in menu.actions()] == [False]  # both used: nothing left to add
    request = scene_request(editor.scene, ProjectDefaults.default())
    assert request.loras == (LoraWeight("ink", 0.6), LoraWeight("detail", 1.0))
    assert editor.scene.settings.to_overrides() == {
        "loras": [{"name": "ink", "weight": 0.6}, {"name": "detail", "weight": 1.0}]
    }
    editor.undo_stack.undo()  # the add, one step each
    assert editor.scene.settings.loras == (LoraWeight("ink", 0.6),)
    assert list(panel.lora_rows) == ["ink"] and panel.lora_rows["ink"][1].value() == 0.6
    editor.undo_stack.redo()
    remove = panel.lora_rows["ink"][0].findChildren(QToolButton)[0]
    remove.click()
    assert editor.scene.settings.loras == (LoraWeight("detail", 1.0),)
    assert list(panel.lora_rows) == ["detail"]


def test_without_configured_loras_the_menu_says_where_to_add_them(panel: SceneSettingsPanel) -> None:
    menu = panel.add_lora.menu()
    menu.aboutToShow.emit()
    assert [(a.text(), a.isEnabled()) for a in menu.actions()] == [
        ("No other LoRAs are configured (Settings -> Models)", False)
    ]


def test_the_add_menu_lists_the_loras_of_the_model_settings_file(panel: SceneSettingsPanel, tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    ModelSettings(loras={"watercolor": tmp_path / "w.safetensors", "detail": tmp_path / "d.safetensors"}).save(path)
    panel.model_settings_path = path
    panel.add_lora.menu().aboutToShow.emit()
    assert [action.text() for action in panel.add_lora.menu().actions()] == ["detail", "watercolor"]
    path.write_text("{ not json", encoding="utf-8")  # a broken file lists none (the settings dialog says why)
    panel.add_lora.menu().aboutToShow.emit()
    assert [action.isEnabled() for action in panel.add_lora.menu().actions()] == [False]


def test_the_model_chooser_offers_the_configured_bases_and_keeps_a_missing_one_visible(
    panel: SceneSettingsPanel, editor: SceneEditor, tmp_path: Path
) -> None:
    settings_file = tmp_path / "models.json"
    ModelSettings(bases={"anime": tmp_path / "anime.safetensors"}).save(settings_file)
    panel.model_settings_path = settings_file
    panel.refresh()
    texts = [panel.model.itemText(i) for i in range(panel.model.count())]
    default = ProjectDefaults.default().model_id
    assert texts == [f"project default ({default})", "sd15", "demo", "anime"]

    panel.model.setCurrentIndex(3)
    panel.model.activated.emit(3)
    assert editor.scene.settings.to_overrides() == {"model_id": "anime"}
    assert scene_request(editor.scene, ProjectDefaults.default()).model_id == "anime"
    assert not panel.reset.isEnabled()  # "Use project defaults" resets the sampler, not the model

    ModelSettings().save(settings_file)  # the base was removed from the settings
    panel.refresh()
    assert panel.model.currentText() == "anime (not configured)"

    panel.model.setCurrentIndex(0)
    panel.model.activated.emit(0)
    assert editor.scene.settings.to_overrides() == {}
    editor.undo_stack.undo()
    assert editor.scene.settings.model_id == "anime" and panel.model.currentData() == "anime"


def test_rebuilt_lora_rows_leave_no_stale_row_on_screen(panel: SceneSettingsPanel) -> None:
    from PySide6.QtWidgets import QApplication

    panel.add_lora_named("ink", 0.8)
    QApplication.processEvents()  # the layout shows the new row
    old_row, _weight = panel.lora_rows["ink"]
    assert not old_row.isHidden()
    panel.add_lora_named("grain", 0.3)  # the rows are rebuilt: the old one goes at once, not at the next idle
    assert old_row.isHidden() and panel.lora_rows["ink"][0] is not old_row
