"""`main.py render` says on stderr, one line each, what the scenes it queues ask of the demo model that it
cannot do (engine.demo.limits, as the GUI's banner), and renders them anyway."""

from __future__ import annotations

from pathlib import Path

import pytest

import main
from cli.preflight import scene_warnings
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects.database import Project
from projects.scenes import SceneLayout, add_scene


def project(path: Path, *scenes: tuple[str, str, int, int]) -> Path:
    with Project.create(path) as opened, opened.write() as session:
        for name, caption, width, height in scenes:
            spec = InstanceSpec(caption=caption, kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
            add_scene(
                session,
                SceneLayout(name, f"{caption} on a white background", width, height, (spec,), overrides={"steps": 2}),
            )
    return path


def test_what_the_demo_model_cannot_do_is_said_before_it_renders(
    untrained_demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(untrained_demo_model))
    path = project(
        tmp_path / "p.instproj", ("cat", "a gray British Shorthair", 512, 512), ("shapes", "a red circle", 96, 64)
    )
    assert main.main(["render", str(path), "--all"]) == 0  # warnings never fail the render
    out, err = capsys.readouterr()
    assert "summary: 2 done" in out
    warnings = [line for line in err.splitlines() if line.startswith(("warning:", "note:"))]
    assert warnings == [
        "warning: scene 'cat': the demo model draws only coloured shapes: a red, green, blue, yellow, purple or "
        "orange circle, square, triangle or star, on a grey, white, beige or light blue background",
        "warning: scene 'cat': the caption: the demo model does not know “gray” (it knows “grey”), “british”, "
        "“shorthair”",
        "warning: scene 'cat': instance 1 (a gray British Shorthair): the demo model does not know “gray” "
        "(it knows “grey”), “british”, “shorthair”",
        "note: scene 'cat': the demo model renders at its own scale: this 512x512 canvas becomes a 64x64 image "
        "(shown scaled to the canvas)",
    ]
    assert err.index("warning:") < err.index("[1/2]")  # said before the first render starts


def test_another_model_gets_no_demo_warnings() -> None:
    cat = RenderRequest(prompt="a gray British Shorthair", width=1280, height=1280, model_id="sd15")
    assert scene_warnings("cat", cat) == []
    assert len(scene_warnings("cat", RenderRequest(prompt="a gray British Shorthair", model_id="demo"))) == 3
