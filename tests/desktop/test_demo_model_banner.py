"""The pre-flight banner says what the demo model cannot do: the size it really renders at and the words of
the scene it does not know, listing what it knows; a scene of its own world at its own size shows nothing."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from desktop.preflight import preflight
from engine.request import InstanceKind, InstanceSpec
from projects.database import Project
from projects.official_json import read_official_json
from projects.scene_settings import SceneSettings
from projects.scenes import SceneLayout, add_scene
from resources import resource_path
from tests.desktop.conftest import open_window


def test_an_official_demo_scene_with_the_demo_model_is_flagged(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "official.instproj"
    with Project.create(path) as project, project.write() as session:
        add_scene(session, read_official_json(resource_path("official-demos", "demo_cat_dog_robin.json")).layout)
    window = open_window(qtbot, path, tmp_path)
    try:
        banner = window.warnings
        qtbot.waitUntil(banner.isVisible, timeout=5_000)
        text = banner.text()
        editor = window.editor
        assert editor is not None
        # What is wrong comes first; the size it renders at is a note after them ("… and N more").
        notes = [w for w in preflight(editor.scene, None, "demo") if w.info]
        assert [n.message for n in notes] == [
            "the demo model renders at its own scale: this 512x512 canvas becomes a 64x64 image "
            "(shown scaled to the canvas)"
        ]
        assert "more" in text.split("<br>")[-1]
        assert "the demo model draws only coloured shapes: a red, green, blue, yellow, purple or orange circle" in text
        assert "the caption: the demo model does not know" in text
        assert "“maltipoo”, “dog”, “gray” (it knows “grey”) and 8 more words" in text
        editor.set_fields("Model", settings=SceneSettings(model_id="sd15"))  # another model: no such warning
        qtbot.waitUntil(lambda: "demo model" not in banner.text(), timeout=5_000)
    finally:
        window.close()


def test_a_scene_of_the_demo_world_at_its_size_shows_no_banner(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "shapes.instproj"
    spec = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    with Project.create(path) as project, project.write() as session:
        add_scene(session, SceneLayout("shapes", "a red circle on a white background", 96, 64, (spec,)))
    window = open_window(qtbot, path, tmp_path)
    try:
        qtbot.wait(400)  # the check runs 150 ms after a change
        assert not window.warnings.isVisible()
        editor = window.editor
        assert editor is not None
        editor.set_caption(editor.scene.instances[0].uid, "a gray British Shorthair")
        qtbot.waitUntil(window.warnings.isVisible, timeout=5_000)
        assert "instance 1 (a gray British Shorthair): the demo model does not know" in window.warnings.text()
    finally:
        window.close()
