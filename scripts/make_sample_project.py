"""Write resources/samples/shapes.instproj: the sample project that opens on first start.

Scenes from the demo model's synthetic world: one per location kind, a scene mixing them, and an
iterative-editing sequence (the same seed throughout: add an instance, move one, replace a caption).

    .venv/bin/python scripts/make_sample_project.py [--out resources/samples/shapes.instproj]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.demo.world import generate, scene_caption  # noqa: E402
from engine.request import InstanceKind, InstanceSpec  # noqa: E402
from projects.database import Project  # noqa: E402
from projects.scenes import SceneLayout, add_scene, get_settings  # noqa: E402

SIZE = 64


def sample_layouts() -> list[SceneLayout]:
    layouts = []
    for index, kind in enumerate(InstanceKind):
        scene = generate(100 + index, size=SIZE)
        layouts.append(
            SceneLayout(
                f"{kind.value}es" if kind is InstanceKind.BOX else f"{kind.value}s",
                scene.caption,
                SIZE,
                SIZE,
                scene.specs(kind),
                seed=7,
            )
        )
    mixed = generate(200, size=SIZE)
    kinds = list(InstanceKind)
    specs = tuple(inst.spec(kinds[i % len(kinds)]) for i, inst in enumerate(mixed.instances))
    layouts.append(SceneLayout("mixed kinds", mixed.caption, SIZE, SIZE, specs, seed=7))

    # Iterative editing: every round keeps the seed and the instances already there, in their slots.
    red = InstanceSpec("a red circle", InstanceKind.BOX, box=(0.08, 0.1, 0.42, 0.44))
    blue = InstanceSpec("a blue square", InstanceKind.BOX, box=(0.55, 0.55, 0.9, 0.9))
    star = InstanceSpec("a yellow star", InstanceKind.BOX, box=(0.55, 0.08, 0.9, 0.43))
    rounds = [
        ("round 1", (red, blue)),
        ("round 2: add a star", (red, blue, star)),
        ("round 3: move the circle", (dataclasses.replace(red, box=(0.1, 0.55, 0.44, 0.89)), blue, star)),
        (
            "round 4: the star becomes a triangle",
            (
                dataclasses.replace(red, box=(0.1, 0.55, 0.44, 0.89)),
                blue,
                dataclasses.replace(star, caption="a yellow triangle"),
            ),
        ),
    ]
    for name, instances in rounds:
        caption = scene_caption([i.caption for i in instances], "grey")
        layouts.append(SceneLayout(f"iterative {name}", caption, SIZE, SIZE, instances, seed=42))
    return layouts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "samples" / "shapes.instproj")
    args = parser.parse_args(argv)
    args.out.unlink(missing_ok=True)
    with Project.create(args.out, name="Shapes (sample)") as project, project.write() as session:
        settings = get_settings(session)
        settings.width = settings.height = SIZE
        settings.steps, settings.model_id, settings.negative_prompt, settings.mis = 20, "demo", "", 0.36
        for layout in sample_layouts():
            add_scene(session, layout)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
