"""The bundled sample project: what scripts/make_sample_project.py writes, and every scene renderable."""

import shutil
from pathlib import Path

from engine.request import InstanceKind
from projects.database import Project
from projects.scenes import list_scenes, scene_layout, scene_to_request
from tests.conftest import REPO_ROOT

SAMPLE = REPO_ROOT / "resources" / "samples" / "shapes.instproj"


def layouts_of(path: Path, tmp_path: Path) -> list[tuple[str, str, tuple[object, ...], int]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / path.name
    shutil.copy(path, copy)  # never open the bundled file itself: opening takes a lock beside it
    with Project.open(copy) as project, project.read() as session:
        scenes = list_scenes(session)
        for scene in scenes:
            request = scene_to_request(session, scene)
            assert request.model_id == "demo" and (request.width, request.height) == (64, 64)
        return [(s.name, s.caption, scene_layout(s).instances, s.seed) for s in scenes]


def test_the_sample_is_what_its_script_writes(tmp_path: Path) -> None:
    from scripts.make_sample_project import main

    fresh = tmp_path / "fresh" / "shapes.instproj"
    fresh.parent.mkdir()
    assert main(["--out", str(fresh)]) == 0
    assert layouts_of(SAMPLE, tmp_path / "a") == layouts_of(fresh, tmp_path / "b")


def test_the_sample_covers_every_kind_and_an_iterative_sequence(tmp_path: Path) -> None:
    layouts = layouts_of(SAMPLE, tmp_path)
    kinds = {spec.kind for _name, _caption, specs, _seed in layouts for spec in specs}  # type: ignore[attr-defined]
    assert kinds == set(InstanceKind)
    rounds = [layout for layout in layouts if layout[0].startswith("iterative")]
    assert len(rounds) == 4 and len({seed for *_rest, seed in rounds}) == 1


def test_the_sample_is_at_the_current_schema(tmp_path: Path) -> None:
    """Opening it needs no upgrade (an upgrade would leave a backup beside every user's copy)."""
    copy = tmp_path / SAMPLE.name
    shutil.copy(SAMPLE, copy)
    with Project.open(copy) as project:
        assert project.report.migrated_from is None
