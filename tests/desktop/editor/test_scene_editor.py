"""Every edit of a scene through its editor, without a window: the result, the undo step, what is saved."""

from __future__ import annotations

import dataclasses

import pytest
from pytestqt.qtbot import QtBot

from desktop.editor.scene_editor import DUPLICATE_OFFSET, SceneEditor
from engine.request import MAX_INSTANCES, InstanceKind, InstanceSpec, RenderRequest, Scheduler
from projects.scene_data import InstanceData, SceneData
from projects.scene_settings import SceneSettings


def box(caption: str, x: float = 0.1) -> InstanceSpec:
    return InstanceSpec(caption=caption, kind=InstanceKind.BOX, box=(x, 0.1, x + 0.2, 0.3))


@pytest.fixture
def editor(qtbot: QtBot) -> SceneEditor:
    scene = SceneData(7, "scene", "a caption", seed=3, instances=(InstanceData(box("a")), InstanceData(box("b", 0.5))))
    return SceneEditor(scene)


def saved(editor: SceneEditor) -> list[SceneData]:
    """Collects what the editor hands over for saving from now on."""
    got: list[SceneData] = []
    editor.document.edited.connect(got.append)
    return got


def captions(editor: SceneEditor) -> list[str]:
    return [inst.caption for inst in editor.scene.instances]


def test_adding_appends_selects_asks_for_the_caption_and_undoes(editor: SceneEditor) -> None:
    asked: list[int] = []
    editor.captionWanted.connect(asked.append)
    out = saved(editor)
    added = editor.add_instance(InstanceSpec(caption="", kind=InstanceKind.POINT, point=(0.5, 0.5)))
    assert added is not None and editor.scene.instances[-1] == added
    assert editor.selection == (added.uid,) and asked == [added.uid]
    assert added.color not in [inst.color for inst in editor.scene.instances[:-1]]
    assert out == [editor.scene]
    editor.undo_stack.undo()
    assert captions(editor) == ["a", "b"] and editor.selection == ()
    assert out[-1].instances == editor.scene.instances


def test_the_slot_limit_holds_for_adding_and_pasting(editor: SceneEditor) -> None:
    messages: list[str] = []
    editor.message.connect(messages.append)
    pasted = editor.insert_instances([InstanceData(box(f"p{k}")) for k in range(40)], "Paste")
    assert len(pasted) == MAX_INSTANCES - 2 and len(editor.scene.instances) == MAX_INSTANCES
    assert "Only 28 of 40 fit" in messages[-1]
    assert editor.add_instance(box("one more"), ask_caption=False) is None
    assert len(editor.scene.instances) == MAX_INSTANCES and "at most 30" in messages[-1]
    editor.undo_stack.undo()
    assert captions(editor) == ["a", "b"]


def test_duplicate_offsets_copies_with_new_uids_and_delete_removes_the_selection(editor: SceneEditor) -> None:
    first = editor.scene.instances[0]
    editor.set_selection([first.uid])
    (copy,) = editor.duplicate_selected()
    assert copy.uid != first.uid and copy.caption == "a" and editor.selection == (copy.uid,)
    assert copy.spec.box == pytest.approx(
        (0.1 + DUPLICATE_OFFSET, 0.1 + DUPLICATE_OFFSET, 0.3 + DUPLICATE_OFFSET, 0.33)
    )
    editor.set_selection([first.uid, copy.uid])
    editor.delete_selected()
    assert captions(editor) == ["b"] and editor.selection == ()
    editor.undo_stack.undo()
    assert captions(editor) == ["a", "b", "a"] and set(editor.selection) == {first.uid, copy.uid}


def test_reorder_sets_the_slot_order(editor: SceneEditor) -> None:
    a, b = editor.scene.instances
    editor.reorder([b, a])
    assert captions(editor) == ["b", "a"]
    editor.reorder([b, a])  # no change, no step
    assert editor.undo_stack.count() == 1
    editor.undo_stack.undo()
    assert captions(editor) == ["a", "b"]


def test_captions_typed_in_one_burst_are_one_undo_step(editor: SceneEditor) -> None:
    uid = editor.scene.instances[0].uid
    for text in ("a c", "a ca", "a cat "):
        editor.set_caption(uid, text, typing=True)
    assert captions(editor)[0] == "a cat" and editor.undo_stack.count() == 1
    editor.undo_stack.undo()
    assert captions(editor)[0] == "a"


def test_lock_and_replace_location(editor: SceneEditor) -> None:
    uid = editor.scene.instances[1].uid
    editor.set_locked(uid, True)
    assert editor.scene.instances[1].locked
    moved = dataclasses.replace(editor.scene.instances[1].spec, box=(0.6, 0.6, 0.9, 0.9))
    editor.replace_spec(uid, moved, "Paint mask")
    assert editor.scene.instances[1].spec.box == (0.6, 0.6, 0.9, 0.9)
    assert [editor.undo_stack.text(i) for i in range(editor.undo_stack.count())] == ["Lock", "Paint mask"]


def test_nudge_moves_the_unlocked_selection_as_one_step(editor: SceneEditor) -> None:
    a, b = editor.scene.instances
    editor.set_locked(b.uid, True)
    editor.set_selection([a.uid, b.uid])
    editor.nudge(0.1, 0.0)
    assert editor.scene.instances[0].spec.box == pytest.approx((0.2, 0.1, 0.4, 0.3))
    assert editor.scene.instances[1].spec.box == b.spec.box  # locked: stays
    editor.undo_stack.undo()
    assert editor.scene.instances[0].spec.box == a.spec.box


def test_a_drag_previews_without_saving_and_commits_one_step(editor: SceneEditor) -> None:
    a, b = editor.scene.instances
    editor.set_selection([a.uid, b.uid])
    out = saved(editor)
    drag = editor.begin_drag()
    assert drag is not None
    for step in (0.05, 0.1, 0.15):
        drag.preview(lambda spec, d=step: dataclasses.replace(spec, box=tuple(v + d for v in spec.box or ())))
    assert out == [] and editor.scene.instances[0].spec.box == pytest.approx((0.25, 0.25, 0.45, 0.45))
    drag.commit("Move")
    assert editor.undo_stack.count() == 1 and editor.undo_stack.text(0) == "Move"
    assert out and out[-1].instances[1].spec.box == pytest.approx((0.65, 0.25, 0.85, 0.45))
    editor.undo_stack.undo()
    assert editor.scene.instances == (a, b)


def test_a_cancelled_drag_leaves_nothing(editor: SceneEditor) -> None:
    a = editor.scene.instances[0]
    drag = editor.begin_drag([a])
    assert drag is not None
    drag.preview(lambda spec: dataclasses.replace(spec, box=(0.5, 0.5, 0.9, 0.9)))
    drag.cancel()
    assert editor.scene.instances[0] == a and editor.undo_stack.count() == 0


def test_locked_instances_cannot_be_dragged(editor: SceneEditor) -> None:
    messages: list[str] = []
    editor.message.connect(messages.append)
    a = editor.scene.instances[0]
    editor.set_locked(a.uid, True)
    editor.set_selection([a.uid])
    assert editor.begin_drag() is None and "locked" in messages[-1]


def test_scene_fields_typing_merges_and_a_new_seed_is_one_step(editor: SceneEditor) -> None:
    for text in ("a d", "a do", "a dog"):
        editor.set_fields("Edit caption", typing=True, caption=text)
    editor.set_fields("Edit caption", caption="a dog")  # unchanged: no step
    assert editor.scene.caption == "a dog" and editor.undo_stack.count() == 1
    editor.new_seed()
    assert editor.undo_stack.count() == 2 and 0 <= editor.scene.seed < 2**31
    editor.undo_stack.undo()
    editor.undo_stack.undo()
    assert (editor.scene.caption, editor.scene.seed) == ("a caption", 3)


def test_restore_puts_back_a_renders_layout_and_settings_as_one_step(editor: SceneEditor) -> None:
    request = RenderRequest(
        prompt="an old caption", width=768, height=512, seed=11, steps=20, scheduler=Scheduler.DDIM,
        instances=(box("old thing", 0.3),),
    )  # fmt: skip
    before = editor.scene
    editor.restore(request, SceneSettings(steps=20, scheduler=Scheduler.DDIM))
    scene = editor.scene
    assert (scene.caption, scene.width, scene.height, scene.seed) == ("an old caption", 768, 512, 11)
    assert scene.settings.to_overrides() == {"steps": 20, "scheduler": "ddim"}
    assert [inst.spec for inst in scene.instances] == [box("old thing", 0.3)]
    assert editor.undo_stack.count() == 1
    editor.undo_stack.undo()
    assert editor.scene == before


def test_tab_cycles_the_selection(editor: SceneEditor) -> None:
    a, b = editor.scene.instances
    editor.cycle_selection()
    assert editor.selection == (a.uid,)
    editor.cycle_selection()
    assert editor.selection == (b.uid,)
    editor.cycle_selection()
    assert editor.selection == (a.uid,)
    editor.cycle_selection(backwards=True)
    assert editor.selection == (b.uid,)
