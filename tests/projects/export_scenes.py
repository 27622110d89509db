"""Projects with finished renders, for the export tests: two scenes with every location kind, and PNGs
with or without our metadata (the pictures are noise or flat colour; the labels are the layouts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.placement_report import InstancePlacement, PlacementReport
from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest
from projects import queue
from projects.database import Project
from projects.png_metadata import HASHES_KEY, REQUEST_KEY, VERSION_KEY, png_with_text
from projects.queue import RenderOutput
from projects.scenes import SceneLayout, add_scene, scene_to_request

HASHES = {"unet": "ab12", "adapter": "cd34"}


def ellipse_bitmap(height: int, width: int, box: tuple[float, float, float, float]) -> np.ndarray[Any, Any]:
    """A filled ellipse inscribed in a normalised box, at its own resolution."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy = (xs + 0.5) / width, (ys + 0.5) / height
    rx, ry = (x1 - x0) / 2, (y1 - y0) / 2
    inside: np.ndarray[Any, Any] = ((cx - (x0 + rx)) / rx) ** 2 + ((cy - (y0 + ry)) / ry) ** 2 <= 1
    return inside.astype(np.uint8)


MASK_BOX = (0.55, 0.3, 0.95, 0.9)
POLYGON = ((0.1, 0.9), (0.3, 0.5), (0.5, 0.9), (0.45, 0.98), (0.15, 0.97))
STREET = SceneLayout(
    "street",
    "a street",
    128,
    96,
    (
        InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.2, 0.5, 0.7)),
        InstanceSpec("a dog", InstanceKind.MASK, mask=MaskRLE.from_bitmap(ellipse_bitmap(48, 64, MASK_BOX))),
        InstanceSpec("a tree", InstanceKind.MASK, polygon=POLYGON),
        InstanceSpec("a kite", InstanceKind.SCRIBBLE, scribble=((0.6, 0.05), (0.7, 0.1), (0.9, 0.2))),
        InstanceSpec("a bird", InstanceKind.POINT, point=(0.8, 0.1)),
    ),
    seed=11,
)
PARK = SceneLayout(
    "park",
    "a park",
    64,
    64,
    (
        InstanceSpec("a  cat", InstanceKind.BOX, box=(0.25, 0.25, 0.75, 0.5)),  # same category as "a cat"
        InstanceSpec("a pond", InstanceKind.MASK, polygon=((0.1, 0.6), (0.9, 0.6), (0.9, 0.95), (0.1, 0.95))),
    ),
    seed=22,
)


def make_png(width: int, height: int, *, noise: bool = True, metadata: RenderRequest | None = None) -> bytes:
    if noise:
        pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
    else:
        image = Image.new("RGB", (width, height), (40, 90, 160))
    if metadata is None:
        return png_with_text(image, {})
    chunks = {REQUEST_KEY: metadata.to_json(), VERSION_KEY: "0.0.1-test", HASHES_KEY: json.dumps(HASHES)}
    return png_with_text(image, chunks)


PLACED = "placed"


def check_report(request: RenderRequest, missed: tuple[int, ...] = ()) -> dict[str, Any]:
    """A stored placement check of a render of `request`: each instance found at its requested box (score
    0.9, IoU 0.8), except the `missed` slots, not found."""
    found = []
    for slot, spec in enumerate(request.instances):
        if slot in missed:
            found.append(InstancePlacement(found=False))
            continue
        box = spec.box or (0.2, 0.2, 0.6, 0.6)
        found.append(InstancePlacement(found=True, iou=0.8, score=0.9, box=box))
    return PlacementReport("test-checker", tuple(found)).to_dict()


def add_rendered_scene(
    project: Project,
    layout: SceneLayout,
    *,
    renders: int = 1,
    metadata: bool = True,
    noise: bool = True,
    placement: str | tuple[tuple[int, ...], ...] | None = PLACED,
) -> tuple[int, list[int]]:
    """A scene with `renders` finished renders (seeds seed, seed+1, ...); returns its id and the render ids.

    `placement`: PLACED (every instance placed), None (not checked), or per render the slots it missed."""
    with project.write() as session:
        scene = add_scene(session, layout)
        scene_id = scene.id
        requests = [scene_to_request(session, scene) for _ in range(renders)]
    render_ids = []
    for n, base in enumerate(requests):
        request = RenderRequest.from_dict({**base.to_dict(), "seed": layout.seed + n})
        with project.write() as session:
            queue.enqueue(session, request, scene_id)
            job = queue.claim_next(session)
            assert job is not None
            png = make_png(layout.width, layout.height, noise=noise, metadata=request if metadata else None)
            if placement == PLACED:
                check: dict[str, Any] | None = check_report(request)
            elif placement is None or isinstance(placement, str):
                check = None
            else:
                check = check_report(request, placement[n])
            output = RenderOutput(png, b"thumb", {"sample": 0.1}, dict(HASHES), placement=check)
            render_ids.append(queue.finish(session, job.id, output))
    return scene_id, render_ids


@contextmanager
def dataset_project_at(path: Path) -> Iterator[Project]:
    """Two scenes: street (two renders) and park (one, whose PNG lacks our metadata); an unrendered one."""
    with Project.create(path, name="demo") as project:
        add_rendered_scene(project, STREET, renders=2)
        add_rendered_scene(project, PARK, metadata=False)
        with project.write() as session:
            add_scene(session, SceneLayout("empty", "nothing yet", 64, 64))
        yield project


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
