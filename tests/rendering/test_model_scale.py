"""A render at the demo model's own scale is stored as rendered: the PNG, its metadata and the render row
say the real size; the stored request (in the row and in the PNG) is the user's, canvas and all."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from engine.providers import load_demo_model
from engine.request import InstanceKind, InstanceSpec
from engine.runner import Runner
from projects.database import Project
from projects.models import Render
from projects.png_metadata import RENDERED_SIZE_KEY, request_from_png
from projects.scenes import SceneLayout, add_scene, find_scene, queue_scene
from rendering.outcomes import Outcome
from rendering.queue_loop import QueueLoop
from tests.rendering.test_queue_loop import Recorder


def test_a_768x512_canvas_is_stored_as_the_96x64_image_the_demo_model_made(
    tmp_path: Path, untrained_demo_model: Path
) -> None:
    path = tmp_path / "p.instproj"
    spec = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    with Project.create(path) as project, project.write() as session:
        add_scene(
            session,
            SceneLayout("wide", "a red circle on a white background", 768, 512, (spec,), overrides={"steps": 2}),
        )
    with Project.open(path) as project:
        with project.write() as session:
            job = queue_scene(session, find_scene(session, "wide"))
        loop = QueueLoop(project, Runner(lambda _id: load_demo_model(untrained_demo_model)), Recorder())
        (result,) = loop.run_until_empty()
        assert result.outcome is Outcome.DONE
        with project.read() as session:
            render = session.get(Render, result.render_id)
            assert render is not None
            assert (render.width, render.height) == (96, 64)
            assert request_from_png(render.png) == job.request and (job.request.width, job.request.height) == (
                768,
                512,
            )
            assert json.loads(render.request_json)["width"] == 768
            assert render.timings["notes"][0].startswith(
                "rendered at 96x64, the model's own scale, for a 768x512 canvas"
            )
            with Image.open(io.BytesIO(render.png)) as image:
                assert image.size == (96, 64)  # not upscaled
                assert json.loads(image.info[RENDERED_SIZE_KEY]) == {"width": 96, "height": 64}
