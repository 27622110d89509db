import sqlite3

from pytestqt.qtbot import QtBot

from desktop.main_window import MainWindow


def scene_row(window: MainWindow) -> tuple[str, int, int, int, str]:
    assert window.store is not None and window.store.flush() and window.store.path is not None
    with sqlite3.connect(f"file:{window.store.path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT caption, width, height, seed, overrides FROM scenes WHERE id = ?",
            (window.editor.scene.scene_id,),
        ).fetchone()
    return tuple(row)  # type: ignore[return-value]


def test_typing_a_caption_is_one_undo_step(qtbot: QtBot, window: MainWindow) -> None:
    panel = window.scene_settings
    panel.caption.setFocus()
    panel.caption.selectAll()
    qtbot.keyClicks(panel.caption, "a dog in a park")
    assert scene_row(window)[0] == "a dog in a park"
    window.commands.undo.trigger()
    assert scene_row(window)[0] == "caption 1"
    assert panel.caption.toPlainText() == "caption 1"


def test_sampler_settings_are_scene_overrides_until_reset(qtbot: QtBot, window: MainWindow) -> None:
    panel = window.scene_settings
    panel.steps.setValue(30)
    panel.mis.setValue(0.0)
    assert '"steps": 30' in scene_row(window)[4] and '"mis": 0.0' in scene_row(window)[4]
    panel.steps.setValue(50)  # the project default: no longer an override
    assert "steps" not in scene_row(window)[4]
    panel.reset.click()
    assert scene_row(window)[4] == "{}"
    assert panel.mis.value() == 0.36


def test_sizes_are_multiples_of_64_and_the_dice_draws_a_seed(qtbot: QtBot, window: MainWindow) -> None:
    panel = window.scene_settings
    panel.width_spin.setValue(600)
    assert scene_row(window)[1] == 576
    assert panel.size_preset.currentText() == "Custom"
    panel.width_spin.setValue(512)
    assert panel.size_preset.currentText() == "512 × 512"
    seed = scene_row(window)[3]
    panel.dice.click()
    assert scene_row(window)[3] != seed
    window.commands.undo.trigger()
    assert scene_row(window)[3] == seed
