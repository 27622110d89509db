"""The demo model shipped in resources/: intact, within its size budget, rendering the sample project, and
placing what is drawn where it is drawn (a fast version of benchmarks/placement.py, on a few layouts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.demo.bundle import read_manifest, verify_files
from engine.demo.model import load_demo
from engine.demo.placement import measure
from engine.providers import DEMO_MODEL_DIR, load_demo_model
from engine.request import InstanceKind, RenderRequest
from engine.runner import LoadedModel, Runner
from projects.database import Project
from projects.models import Render
from projects.scenes import find_scene, queue_scene
from rendering.outcomes import Outcome
from rendering.queue_loop import QueueLoop
from tests.conftest import REPO_ROOT

# A regression bar for a dozen layouts, well under the recorded 200-layout figures (box 0.41, point 0.47 with
# MIS on) and far over the unmasked model this one replaced (0.015 and 0.05).
FLOORS = {InstanceKind.BOX: 0.2, InstanceKind.POINT: 0.25}


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    """The bundled model, loaded once for the module (the sample project's render and the placement run)."""
    return load_demo_model()


def test_the_bundled_model_is_intact_within_budget_and_documented() -> None:
    assert verify_files(DEMO_MODEL_DIR) == []
    manifest = read_manifest(DEMO_MODEL_DIR)
    assert manifest["total_bytes"] <= 30 * 2**20
    assert [c.split()[2] for c in manifest["training"]["commands"]] == ["vae", "unet", "bundle"]
    evaluation = manifest["evaluation"]
    assert evaluation["layouts"] >= 200 and set(evaluation["mis_on"]) == {"box", "point", "scribble", "mask", "shape"}
    assert "edit_locality" in evaluation and evaluation["render_seconds"]
    assert {"96x64", "64x96"} <= set(evaluation["canvases"])
    assert manifest["training"]["text_encoder"] == {
        "from": "resources/demo/model",
        "frozen": True,
        "unchanged_from_previous": True,
    }


def test_the_bundled_model_attends_by_instance_region() -> None:
    from engine.models.fusers import fuser_config_of

    components, config = load_demo(DEMO_MODEL_DIR)
    assert config.fusers.masked_attention and fuser_config_of(components.unet) == config.fusers


def test_the_sample_project_renders_with_it(tmp_path: Path, loaded: LoadedModel) -> None:
    project_path = tmp_path / "shapes.instproj"
    shutil.copyfile(REPO_ROOT / "resources" / "samples" / "shapes.instproj", project_path)
    with Project.open(project_path) as project:
        with project.write() as session:
            scene = find_scene(session, "mixed kinds")
            scene.overrides = {**scene.overrides, "steps": 4}  # the sample's scene as it is, in fewer steps
            queue_scene(session, scene)

        class Quiet:
            def job_started(self, job: object) -> None: ...
            def job_progress(self, *args: object) -> None: ...
            def job_ended(self, result: object) -> None: ...

        (result,) = QueueLoop(project, Runner(lambda _id: loaded), Quiet()).run_until_empty()
        assert result.outcome is Outcome.DONE, result.error
        with project.read() as session:
            render = session.get(Render, result.render_id)
            assert render is not None and (render.width, render.height) == (64, 64)
            assert RenderRequest.from_json(render.request_json).steps == 4
            assert render.model_hashes.keys() == {"vae", "unet", "text_encoder"}


def test_a_quick_placement_run_places_what_is_drawn(loaded: LoadedModel) -> None:
    """A fast version of benchmarks/placement.py on the first dozen held-out layouts, boxes and points at 10
    steps: the model places most instances where they were drawn (a lower bar than the benchmark's targets,
    which need 200 layouts at 20 steps), about as well as its recorded evaluation says, and renders
    reproducibly. The layouts are fixed: at 10 steps layouts 0-11 score box 0.46, point 0.56 (at 20 steps 0.28,
    0.54). Any 12 consecutive ones of the first 48 score box 0.19-0.50 (median 0.37), point 0.29-0.56 at 10
    steps, and 0.20-0.40, 0.27-0.60 at 20; at 6 steps the model falls apart (about 0.05)."""
    pipe = loaded.pipeline
    requests: list[RenderRequest] = []
    images: list[np.ndarray] = []

    def render(request: RenderRequest) -> np.ndarray:
        image = pipe.render(request).image
        requests.append(request)
        images.append(image)
        return image

    scores = measure(render, layouts=12, kinds=tuple(FLOORS), steps=10)
    recorded = read_manifest(DEMO_MODEL_DIR)["evaluation"]["mis_on"]
    for kind, floor in FLOORS.items():
        score = scores[kind].score
        assert score >= floor, (kind, score)
        assert abs(score - recorded[kind.value]["score"]) < 0.25, (kind, score)
    first = next(i for i, request in enumerate(requests) if len(request.instances) > 1)
    assert np.array_equal(pipe.render(requests[first]).image, images[first])
