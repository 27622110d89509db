"""The demo model's synthetic world: coloured shapes on plain backgrounds, with captions and layouts.

Every scene is a pure function of its seed: the same seed gives the same image, captions and geometry.
Shapes do not overlap, so each instance's mask is exactly the pixels it covers, which the placement
measurement relies on. All location kinds come from the ground truth: the tight box, the centre
point, a scribble that stays inside the shape, the outline polygon and the mask bitmap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from engine.geometry import bitmap_bounding_box
from engine.request import InstanceKind, InstanceSpec, MaskRLE

RGB = tuple[int, int, int]

# Saturated, far apart in RGB, so the analyser can tell them apart after a model renders them.
COLOURS: Final[dict[str, RGB]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 180),
    "orange": (245, 130, 20),
}
# Muted and light: never mistaken for a shape colour.
BACKGROUNDS: Final[dict[str, RGB]] = {
    "grey": (150, 150, 150),
    "white": (235, 235, 230),
    "beige": (215, 200, 170),
    "light blue": (175, 200, 225),
}
SHAPES: Final = ("circle", "square", "triangle", "star")
MAX_INSTANCES: Final = 6
SCRIBBLE_POINTS: Final = 20
SUPERSAMPLE: Final = 4  # shapes are drawn larger, then downsampled, for smooth edges


@dataclass(frozen=True)
class WorldInstance:
    shape: str
    colour: str
    centre: tuple[float, float]  # normalised
    radius: float  # normalised, half the shape's extent
    rotation: float  # radians
    polygon: tuple[tuple[float, float], ...]  # normalised outline
    mask: npt.NDArray[np.bool_]  # (H, W): the pixels the shape covers

    @property
    def caption(self) -> str:
        return _caption(self.colour, self.shape)

    @property
    def box(self) -> tuple[float, float, float, float]:
        box = bitmap_bounding_box(self.mask)
        if box is None:
            raise ValueError(f"the {self.caption} covers no pixel")
        return box

    def scribble(self, rng: np.random.Generator) -> tuple[tuple[float, float], ...]:
        """A stroke inside the shape: a wavy line through its centre, shrunk to stay within the outline."""
        angle = rng.uniform(0, math.pi)
        reach = 0.45 * self.radius * (0.6 if self.shape == "star" else 1.0)
        wobble = rng.uniform(0.0, 0.25) * reach
        points = []
        for t in np.linspace(-1.0, 1.0, SCRIBBLE_POINTS):
            along, across = t * reach, wobble * math.sin(3 * t)
            x = self.centre[0] + along * math.cos(angle) - across * math.sin(angle)
            y = self.centre[1] + along * math.sin(angle) + across * math.cos(angle)
            points.append((min(1.0, max(0.0, x)), min(1.0, max(0.0, y))))
        return tuple(points)

    def spec(self, kind: InstanceKind, rng: np.random.Generator | None = None) -> InstanceSpec:
        """This instance located the way the user would with `kind`."""
        if kind is InstanceKind.BOX:
            return InstanceSpec(self.caption, kind, box=self.box)
        if kind is InstanceKind.POINT:
            return InstanceSpec(self.caption, kind, point=self.centre)
        if kind is InstanceKind.SCRIBBLE:
            return InstanceSpec(self.caption, kind, scribble=self.scribble(rng or np.random.default_rng(0)))
        return InstanceSpec(
            self.caption, kind, polygon=self.polygon, mask=MaskRLE.from_bitmap(self.mask), box=self.box
        )


def instance_captions() -> list[str]:
    """Every instance caption the world can produce (a colour and a shape), in a fixed order."""
    return [_caption(colour, shape) for colour in COLOURS for shape in SHAPES]


def _caption(colour: str, shape: str) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape}"


@dataclass(frozen=True)
class WorldScene:
    seed: int
    background: str
    instances: tuple[WorldInstance, ...]
    image: npt.NDArray[np.uint8]  # (H, W, 3)

    @property
    def caption(self) -> str:
        return scene_caption([inst.caption for inst in self.instances], self.background)

    def specs(self, kind: InstanceKind) -> tuple[InstanceSpec, ...]:
        rng = np.random.default_rng(self.seed + 1)
        return tuple(inst.spec(kind, rng) for inst in self.instances)


def scene_caption(captions: Sequence[str], background: str) -> str:
    listed = captions[0] if len(captions) == 1 else ", ".join(captions[:-1]) + " and " + captions[-1]
    return f"{listed} on a {background} background"


def outline(shape: str, centre: tuple[float, float], radius: float, rotation: float) -> list[tuple[float, float]]:
    """The shape's outline in normalised coordinates (a circle as a 48-gon), inside the circle of `radius`.

    Every shape reaches exactly to that circle, so two shapes whose circles are apart never overlap and a
    shape whose circle is on the canvas stays on it.
    """
    cx, cy = centre
    if shape == "circle":
        corners = [(radius, 2 * math.pi * k / 48) for k in range(48)]
    elif shape == "square":
        corners = [(radius, math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif shape == "triangle":
        corners = [(radius, -math.pi / 2 + k * 2 * math.pi / 3) for k in range(3)]
    elif shape == "star":
        corners = [(radius if k % 2 == 0 else radius * 0.45, -math.pi / 2 + k * math.pi / 5) for k in range(10)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return [(cx + r * math.cos(a + rotation), cy + r * math.sin(a + rotation)) for r, a in corners]


def generate(seed: int, size: int = 64, max_instances: int = MAX_INSTANCES, min_instances: int = 1) -> WorldScene:
    """One scene of min..max_instances shapes, each of its own colour (the colour identifies it), none overlapping.

    A crowded canvas may hold fewer than `min_instances`: a shape that finds no room is left out.
    """
    if not 1 <= min_instances <= max_instances <= len(COLOURS):
        raise ValueError(
            f"need 1 <= min_instances <= max_instances <= {len(COLOURS)}: each instance has its own colour"
        )
    rng = np.random.default_rng(seed)
    background = str(rng.choice(list(BACKGROUNDS)))
    count = int(rng.integers(min_instances, max_instances + 1))
    colours = [str(c) for c in rng.choice(list(COLOURS), size=count, replace=False)]
    chosen = [(colour, str(rng.choice(SHAPES))) for colour in colours]

    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), BACKGROUNDS[background])
    draw = ImageDraw.Draw(canvas)
    placed: list[tuple[float, float, float]] = []
    instances = []
    for colour, shape in chosen:
        for _attempt in range(200):
            radius = float(rng.uniform(0.1, 0.24))
            centre = (float(rng.uniform(radius, 1 - radius)), float(rng.uniform(radius, 1 - radius)))
            if all(math.dist(centre, (x, y)) > radius + r + 0.03 for x, y, r in placed):
                break
        else:
            continue  # no room left for this one: the scene has fewer instances
        rotation = float(rng.uniform(0, 2 * math.pi)) if shape != "circle" else 0.0
        points = outline(shape, centre, radius, rotation)
        draw.polygon([(x * big, y * big) for x, y in points], fill=COLOURS[colour])
        placed.append((centre[0], centre[1], radius))
        mask_image = Image.new("L", (big, big), 0)
        ImageDraw.Draw(mask_image).polygon([(x * big, y * big) for x, y in points], fill=255)
        mask = np.asarray(mask_image.resize((size, size), Image.Resampling.BOX)) >= 128
        instances.append(WorldInstance(shape, colour, centre, radius, rotation, tuple(points), mask))
    image = np.asarray(canvas.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
    return WorldScene(seed=seed, background=background, instances=tuple(instances), image=image)


def on_canvas(scene: WorldScene, width: int, height: int, left: int, top: int) -> WorldScene:
    """`scene` pasted at pixel (left, top) onto a width x height canvas of its background: a non-square layout
    whose ground truth is known. Shapes keep their pixels; their geometry is re-normalised to the new canvas."""
    size = scene.image.shape[0]
    if not (0 <= left <= width - size and 0 <= top <= height - size):
        raise ValueError(f"a {size}x{size} scene does not fit a {width}x{height} canvas at ({left}, {top})")
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = scene.image[0, 0]  # the corner is background: shapes stay clear of the edge
    image[top : top + size, left : left + size] = scene.image

    def moved(point: tuple[float, float]) -> tuple[float, float]:
        return ((point[0] * size + left) / width, (point[1] * size + top) / height)

    instances = []
    for inst in scene.instances:
        mask = np.zeros((height, width), dtype=bool)
        mask[top : top + size, left : left + size] = inst.mask
        polygon = tuple(moved(p) for p in inst.polygon)
        radius = inst.radius * size / max(width, height)
        instances.append(
            WorldInstance(inst.shape, inst.colour, moved(inst.centre), radius, inst.rotation, polygon, mask)
        )
    return WorldScene(scene.seed, scene.background, tuple(instances), image)
