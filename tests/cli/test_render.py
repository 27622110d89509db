"""`main.py render`: the queue without a window, with progress, a summary and a clean Ctrl-C."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import main
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects.database import Project
from projects.models import JobStatus
from projects.png_metadata import REQUEST_KEY
from projects.queue import claim_next, fail, list_jobs
from projects.scenes import SceneLayout, add_scene, find_scene, queue_scene
from tests.conftest import REPO_ROOT


@pytest.fixture
def demo_model(untrained_demo_model: Path) -> Path:
    return untrained_demo_model


def shapes_project(path: Path, scenes: int = 2, steps: int = 3) -> Path:
    with Project.create(path) as project, project.write() as session:
        for k in range(scenes):
            spec = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
            add_scene(
                session,
                SceneLayout(
                    f"s{k}", "a red circle on a white background", 64, 64, (spec,), seed=k, overrides={"steps": steps}
                ),
            )
    return path


def test_render_all_scenes_stores_each_render_with_its_request(
    demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(demo_model))
    path = shapes_project(tmp_path / "p.instproj")
    assert main.main(["render", str(path), "--all"]) == 0
    out, err = capsys.readouterr()
    assert "summary: 2 done" in out and "[2/2] job 2: done" in err
    assert "[1/2] job 1: loading the model…" in err  # before its first step; job 2 finds it loaded
    assert "job 2: loading" not in err
    # The bar counts the 3 steps each scene asked for (PLMS's extra first evaluation is no step): 1/3 .. 3/3.
    assert sorted(set(re.findall(r"\b(\d+)/(\d+) steps", err))) == [("1", "3"), ("2", "3"), ("3", "3")]
    with Project.open(path) as project, project.read() as session:
        jobs = list_jobs(session)
        from projects.models import Render

        renders = session.query(Render).all()
        assert [job.status for job in jobs] == [JobStatus.DONE, JobStatus.DONE]
        assert len(renders) == 2 and {r.seed for r in renders} == {0, 1}
        image = Image.open(io.BytesIO(renders[0].png))
        assert image.size == (64, 64)
        stored = RenderRequest.from_json(image.text[REQUEST_KEY])  # type: ignore[attr-defined]
        assert stored == RenderRequest.from_json(renders[0].request_json)
    assert main.main(["render", str(path)]) == 0
    assert "nothing to render" in capsys.readouterr().out


def test_variations_use_new_seeds_and_a_missing_model_fails_the_job_in_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(tmp_path / "no-model"))
    path = shapes_project(tmp_path / "p.instproj", scenes=1)
    assert main.main(["render", str(path), "--scenes", "s0", "--variations", "3"]) == 1
    out = capsys.readouterr().out
    assert "summary: 3 failed" in out and "the bundled demo model is not in this copy of the app" in out
    with Project.open(path) as project, project.read() as session:
        jobs = list_jobs(session)
    assert len(jobs) == 3 and len({job.request.seed for job in jobs}) == 3
    assert all(job.status is JobStatus.FAILED for job in jobs)


def test_ctrl_c_puts_the_running_job_back_and_says_so(demo_model: Path, tmp_path: Path) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=400)
    env = {**os.environ, "INSTANCE_STUDIO_DEMO_MODEL": str(demo_model), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "main.py"), "render", str(path), "--all"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 120
    while "steps" not in seen and time.monotonic() < deadline:  # wait until it is rendering
        seen += proc.stderr.read(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "1 requeued" in out and "back in the queue" in out
    with Project.open(path) as project, project.read() as session:
        (job,) = list_jobs(session)
    assert job.status is JobStatus.PENDING and job.attempts == 0


def failed_twice_interrupted(path: Path) -> None:
    """Queue scene s0, and let the app die twice while rendering it: the next open marks it failed."""
    with Project.open(path) as project, project.write() as session:
        queue_scene(session, find_scene(session, "s0"))
    for _ in range(2):
        with Project.open(path) as project, project.write() as session:
            assert claim_next(session) is not None  # ...and the app dies here


def test_retry_failed_queues_the_failed_jobs_again_of_the_chosen_scenes_or_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No model: every render fails at once, in words (the retry is what is tested, not the picture).
    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(tmp_path / "no-model"))
    path = shapes_project(tmp_path / "p.instproj", scenes=2, steps=2)
    failed_twice_interrupted(path)
    with Project.open(path) as project, project.write() as session:
        (interrupted,) = list_jobs(session)
        assert interrupted.status is JobStatus.FAILED and "interrupted 2 times" in (interrupted.error or "")
        s1 = find_scene(session, "s1")
        queue_scene(session, s1)
        job = claim_next(session)
        assert job is not None and job.scene_id == s1.id
        fail(session, job.id, "NaN output")
    # Only s1's failed job: s0's stays failed.
    assert main.main(["render", str(path), "--retry-failed", "--scenes", "s1"]) == 1
    out = capsys.readouterr().out
    assert "1 failed job(s) are back in the queue" in out and "summary: 1 failed" in out
    with Project.open(path) as project, project.read() as session:
        jobs = {job.id: job for job in list_jobs(session)}
    assert interrupted.id in jobs and job.id not in jobs and len(jobs) == 2, "the retry took the failed job's place"
    # Then every failed job: s0's (failed after two interruptions) renders again too.
    assert main.main(["render", str(path), "--retry-failed"]) == 1
    out = capsys.readouterr().out
    assert "2 failed job(s) are back in the queue" in out and "summary: 2 failed" in out
    with Project.open(path) as project, project.read() as session:
        jobs = {job.id: job for job in list_jobs(session)}
    assert len(jobs) == 2 and interrupted.id not in jobs
    assert {job.scene_id for job in jobs.values()} == {interrupted.scene_id, s1.id}
    assert all(job.attempts == 1 and "demo model" in (job.error or "") for job in jobs.values())
    assert main.main(["render", str(path), "--retry-failed", "--variations", "2"]) == 1
    assert "does not go with --retry-failed" in capsys.readouterr().err


def test_report_lists_each_finished_job_with_its_time_and_reused_instances(
    demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two variants of one scene (same seed, one instance moved): the second job reuses the unmoved chain."""
    import json

    from projects.models import Render

    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(demo_model))
    path = tmp_path / "p.instproj"
    circle = InstanceSpec(caption="a red circle", kind=InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5))
    with Project.create(path) as project, project.write() as session:
        for name, x in (("first", 0.5), ("moved", 0.3)):
            square = InstanceSpec(caption="a blue square", kind=InstanceKind.BOX, box=(x, 0.5, x + 0.4, 0.9))
            layout = SceneLayout(name, "shapes", 64, 64, (circle, square), seed=5, overrides={"steps": 3})
            add_scene(session, layout)
    report = tmp_path / "out" / "report.json"
    report.parent.mkdir()

    assert main.main(["render", str(path), "--all", "--report", str(report)]) == 0

    assert f"report of 2 finished job(s) written to {report}" in capsys.readouterr().out
    rows = json.loads(report.read_text())
    assert [(r["scene"], r["job"], r["reused_instances"], r["instances"]) for r in rows] == [
        ("first", 1, 0, 2),
        ("moved", 2, 1, 2),
    ]
    assert all(isinstance(r["seconds"], float) and r["seconds"] > 0 for r in rows)
    with Project.open(path) as project, project.read() as session:
        stored = [render.timings["reused_instances"] for render in session.query(Render).order_by(Render.id)]
    assert stored == [[], [0]], "each render record says which instances were reused"


def test_report_of_an_empty_queue_is_an_empty_list_and_an_unwritable_one_is_one_line(
    demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(demo_model))
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    report = tmp_path / "report.json"
    assert main.main(["render", str(path), "--report", str(report)]) == 0
    assert json.loads(report.read_text()) == []
    assert main.main(["render", str(path), "--all", "--report", str(tmp_path / "missing" / "r.json")]) == 1
    err = capsys.readouterr().err
    assert "the report could not be written" in err and "Traceback" not in err


def demo_lora(demo_model: Path, path: Path, seed: int) -> Path:
    """A random LoRA for the demo model's UNet attention (not its grounding fusers'), in diffusers' naming."""
    import torch
    from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
    from safetensors.torch import save_file

    from engine.providers import load_demo_model

    unet = load_demo_model(demo_model).pipeline.unet
    torch.manual_seed(seed)
    targets = r"^(down_blocks|mid_block|up_blocks)\.((?!fuser).)*\.(to_q|to_k|to_v|to_out\.0)$"
    config = LoraConfig(r=2, lora_alpha=2, target_modules=targets, init_lora_weights=False)
    state = get_peft_model_state_dict(inject_adapter_in_model(config, unet))
    save_file({f"unet.{k}": v.contiguous() for k, v in state.items()}, path)
    return path


def test_a_scene_with_two_loras_renders_with_both_and_its_png_names_them(
    demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from engine.model_settings import ModelSettings
    from engine.request import LoraWeight
    from engine.weights_io import sha256_file
    from projects.png_metadata import HASHES_KEY

    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(demo_model))
    monkeypatch.setenv("INSTANCE_STUDIO_HOME", str(tmp_path / "home"))
    files = {
        name: demo_lora(demo_model, tmp_path / f"{name}.safetensors", seed)
        for seed, name in enumerate(("ink", "grain"))
    }
    ModelSettings(loras=files).save(tmp_path / "home" / "models.json")
    path = shapes_project(tmp_path / "p.instproj", scenes=2)
    loras = [{"name": "ink", "weight": 0.7}, {"name": "grain", "weight": -0.4}]
    with Project.open(path) as project, project.write() as session:
        find_scene(session, "s1").overrides = {"steps": 3, "loras": loras}  # s0 renders without LoRAs
    assert main.main(["render", str(path), "--all"]) == 0
    assert "summary: 2 done" in capsys.readouterr().out
    with Project.open(path) as project, project.read() as session:
        from projects.models import Render

        renders = {r.seed: Image.open(io.BytesIO(r.png)) for r in session.query(Render).all()}
    plain, with_loras = renders[0].text, renders[1].text  # type: ignore[attr-defined]
    assert RenderRequest.from_json(with_loras[REQUEST_KEY]).loras == (
        LoraWeight("ink", 0.7),
        LoraWeight("grain", -0.4),
    )
    assert json.loads(with_loras[REQUEST_KEY])["loras"] == loras
    hashes = json.loads(with_loras[HASHES_KEY])
    assert hashes["lora:ink"] == sha256_file(files["ink"]) and hashes["lora:grain"] == sha256_file(files["grain"])
    assert "loras" not in json.loads(plain[REQUEST_KEY])
    assert not any(key.startswith("lora:") for key in json.loads(plain[HASHES_KEY]))


# --- --until-placed ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--all", "--until-placed", "0"], "--until-placed takes 1 to 100 seeds, not 0"),
        (["--all", "--until-placed", "101"], "--until-placed takes 1 to 100 seeds, not 101"),
        (["--retry-failed", "--until-placed", "3"], "it does not go with --retry-failed"),
        (["--until-placed", "3"], "--until-placed queues new renders: give --scenes or --all"),
    ],
)
def test_until_placed_out_of_range_or_without_scenes_is_one_line_and_queues_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=1)
    assert main.main(["render", str(path), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with Project.open(path) as project, project.read() as session:
        assert list_jobs(session) == []


def test_until_placed_refuses_a_model_no_checker_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shapes_project(tmp_path / "p.instproj", scenes=2)
    with Project.open(path) as project, project.write() as session:
        find_scene(session, "s1").overrides = {"steps": 3, "model_id": "sd15"}
    assert main.main(["render", str(path), "--all", "--until-placed", "3"]) == 1
    err = capsys.readouterr().err
    assert "scene 's1' renders with 'sd15', whose renders no placement checker reads" in err
    assert "`main.py models set --checker FOLDER`" in err
    with Project.open(path) as project, project.read() as session:
        assert list_jobs(session) == [], "nothing is queued, not even the demo scene's job"


def test_until_placed_rerolls_what_missed_and_sums_up_the_scenes_placed(
    demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from projects.models import Render

    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(demo_model))
    path = shapes_project(tmp_path / "p.instproj", scenes=1, steps=2)
    report = tmp_path / "report.json"
    # The untrained model draws no red circle: each seed misses, and the chain stops after 2 seeds.
    assert main.main(["render", str(path), "--all", "--until-placed", "2", "--report", str(report)]) == 0
    out, err = capsys.readouterr()
    assert "[1/2] job 1: done in" in err and "· 1 of 1 missed -> seed 1 queued" in err
    assert "[2/2] job 2: done in" in err and "· 1 of 1 missed, all 2 seeds tried" in err
    assert "summary: 2 done" in out and "placement: 0 of 1 scene(s) fully placed, 2.0 render(s) per scene" in out
    rows = json.loads(report.read_text())
    assert [(r["job"], r["seed"], r["placement"]) for r in rows] == [(1, 0, "1 of 1 missed"), (2, 1, "1 of 1 missed")]
    with Project.open(path) as project, project.read() as session:
        renders = session.query(Render).order_by(Render.id).all()
        assert [(r.seed, r.reroll_group) for r in renders] == [(0, 1), (1, 1)]
        assert all(r.placement is not None and r.placement["checker"] == "shape-world" for r in renders)
    # Variations: each is a chain of its own (no model this time: the jobs are what is looked at).
    monkeypatch.setenv("INSTANCE_STUDIO_DEMO_MODEL", str(tmp_path / "no-model"))
    assert main.main(["render", str(path), "--scenes", "s0", "--variations", "2", "--until-placed", "3"]) == 1
    assert "placement:" not in capsys.readouterr().out, "nothing was checked"
    with Project.open(path) as project, project.read() as session:
        variations = [job for job in list_jobs(session) if job.id > 2]
    assert [(job.until_placed, job.reroll_group) for job in variations] == [(3, job.id) for job in variations]
    assert len(variations) == 2
