"""The render request: everything one render needs, as frozen plain data.

A `RenderRequest` is what the queue stores and what the engine consumes. It imports no torch, so the
project layer can build and store requests without loading the model stack, and it round-trips
through JSON exactly, so any render can be repeated bit for bit.

Geometry is in normalised [0, 1] coordinates of the canvas (x to the right, y down), which keeps a
layout valid when the canvas size changes. The geometry value types (`MaskRLE`, `Box`, `Point`) live
in `engine.geometry` and the validation helpers (`Problem`, `RequestValidationError`) in
`engine.validation`; both are re-exported here, so `engine.request` stays the one module the project
layer imports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from engine.geometry import MAX_MASK_SIDE, Box, MaskRLE, Point, mask_problems
from engine.model_settings import check_name
from engine.validation import (
    Problem,
    Reader,
    RequestValidationError,
    brief,
    finite_number,
    is_int,
    is_number,
    reject_constant,
    text_problem,
)

__all__ = [
    "CANVAS_MULTIPLE",
    "MAX_CANVAS",
    "MAX_CAPTION_CHARS",
    "MAX_GUIDANCE",
    "MAX_INSTANCES",
    "MAX_LORAS",
    "MAX_LORA_WEIGHT",
    "MAX_MASK_SIDE",
    "MAX_POLYGON_POINTS",
    "MAX_SCRIBBLE_POINTS",
    "MAX_SEED",
    "MAX_STEPS",
    "MIN_CANVAS",
    "REQUEST_VERSION",
    "Box",
    "InstanceKind",
    "InstanceSpec",
    "LoraWeight",
    "MaskRLE",
    "Point",
    "Problem",
    "RenderRequest",
    "RequestValidationError",
    "Scheduler",
    "instance_label",
    "instance_problems",
    "lora_problems",
    "request_problems",
]

REQUEST_VERSION: Final = 1
MAX_INSTANCES: Final = 30
MIN_CANVAS: Final = 64
MAX_CANVAS: Final = 4096
CANVAS_MULTIPLE: Final = 8
MAX_STEPS: Final = 1000
MAX_GUIDANCE: Final = 50.0
MAX_SEED: Final = 2**63 - 1  # fits SQLite's signed 64-bit integer
MAX_SCRIBBLE_POINTS: Final = 1024
MAX_POLYGON_POINTS: Final = 4096
MAX_CAPTION_CHARS: Final = 2000
MAX_LORAS: Final = 8
MAX_LORA_WEIGHT: Final = 4.0  # |weight|: LoRAs are trained for about 1; far past it they only make noise


class InstanceKind(StrEnum):
    """How the user located an instance; decides which location inputs the model is given."""

    BOX = "box"
    POINT = "point"
    SCRIBBLE = "scribble"
    MASK = "mask"  # a polygon, a bitmap, or both


class Scheduler(StrEnum):
    PLMS = "plms"  # the official sampler, for parity
    DDIM = "ddim"
    DPM_SOLVER_PP = "dpmsolver++"


@dataclass(frozen=True)
class InstanceSpec:
    """One instance: a caption and where it goes.

    `kind` says which location the user gave and the model is conditioned on; the other geometry
    fields may carry extra, derived locations (a mask instance usually keeps its box, as the
    official format does).

    An instance on its own may be incomplete (a scene being edited holds such instances); a
    `RenderRequest` only accepts instances without problems, and names their slots in its errors.
    """

    caption: str
    kind: InstanceKind
    box: Box | None = None
    point: Point | None = None
    scribble: tuple[Point, ...] | None = None
    polygon: tuple[Point, ...] | None = None
    mask: MaskRLE | None = None

    def problems(self, index: int | None = None) -> list[Problem]:
        """What keeps this instance from being rendered; `index` (0-based) names its slot."""
        return instance_problems(self, index)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"caption": self.caption, "kind": self.kind.value}
        if self.box is not None:
            data["box"] = list(self.box)
        if self.point is not None:
            data["point"] = list(self.point)
        if self.scribble is not None:
            data["scribble"] = [list(p) for p in self.scribble]
        if self.polygon is not None:
            data["polygon"] = [list(p) for p in self.polygon]
        if self.mask is not None:
            data["mask"] = self.mask.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Any, index: int | None = None) -> InstanceSpec:
        """Read and validate an instance from JSON-shaped data."""
        where = "instance" if index is None else f"instances[{index}]"
        reader = Reader(where)
        obj = reader.mapping(data, where)
        reader.no_unknown_keys(obj, {"caption", "kind", "box", "point", "scribble", "polygon", "mask"}, where)
        caption = reader.string(obj.get("caption"), f"{where}.caption")
        kind = reader.enum(InstanceKind, obj.get("kind"), f"{where}.kind")
        box = point = None
        scribble = polygon = None
        if obj.get("box") is not None:
            box = reader.floats(obj["box"], f"{where}.box", length=4)
        if obj.get("point") is not None:
            point = reader.floats(obj["point"], f"{where}.point", length=2)
        if obj.get("scribble") is not None:
            scribble = reader.points(obj["scribble"], f"{where}.scribble")
        if obj.get("polygon") is not None:
            polygon = reader.points(obj["polygon"], f"{where}.polygon")
        mask = None
        if obj.get("mask") is not None:
            try:
                mask = MaskRLE.from_dict(obj["mask"], f"{where}.mask")
            except RequestValidationError as exc:
                reader.problems.extend(exc.problems)
        reader.raise_if_any()
        assert caption is not None and kind is not None
        spec = cls(
            caption=caption,
            kind=kind,
            box=_as_box(box),
            point=_as_point(point),
            scribble=scribble,
            polygon=polygon,
            mask=mask,
        )
        problems = spec.problems(index)
        if problems:
            raise RequestValidationError(problems)
        return spec


@dataclass(frozen=True)
class LoraWeight:
    """One LoRA applied to a render: its name in the model settings and how strongly it acts (0 = not at all)."""

    name: str
    weight: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight}

    @classmethod
    def from_dict(cls, data: Any, where: str = "lora") -> LoraWeight:
        """Read one LoRA entry from JSON-shaped data; the request checks the values."""
        reader = Reader(where)
        obj = reader.mapping(data, where)
        reader.no_unknown_keys(obj, {"name", "weight"}, where)
        name = reader.string(obj.get("name"), f"{where}.name")
        weight = reader.number(obj.get("weight"), f"{where}.weight")
        reader.raise_if_any()
        assert name is not None
        return cls(name=name, weight=weight)


@dataclass(frozen=True)
class RenderRequest:
    """Every parameter of one render. Defaults are the official InstanceDiffusion ones."""

    prompt: str
    width: int = 512
    height: int = 512
    seed: int = 0
    negative_prompt: str = ""
    steps: int = 50
    guidance: float = 7.5
    alpha: float = 0.75  # grounding is on for the first int(alpha * steps) steps
    mis: float = 0.36  # multi-instance sampler runs for the first int(mis * steps) steps
    scheduler: Scheduler = Scheduler.PLMS
    model_id: str = "demo"
    instances: tuple[InstanceSpec, ...] = field(default_factory=tuple)
    version: int = REQUEST_VERSION
    # LoRAs from the model settings, applied in this order with their weights; none is the base alone.
    loras: tuple[LoraWeight, ...] = ()

    def __post_init__(self) -> None:
        problems = request_problems(self)
        if problems:
            raise RequestValidationError(problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "steps": self.steps,
            "guidance": self.guidance,
            "alpha": self.alpha,
            "mis": self.mis,
            "scheduler": self.scheduler.value,
            "model_id": self.model_id,
            "instances": [inst.to_dict() for inst in self.instances],
            # Only when there are some: a request without LoRAs reads exactly as older versions wrote it.
            **({"loras": [lora.to_dict() for lora in self.loras]} if self.loras else {}),
        }

    def to_json(self) -> str:
        # Python writes floats as their shortest repr, which parses back to the identical double.
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any) -> RenderRequest:
        reader = Reader("request")
        obj = reader.mapping(data, "request")
        known = {
            "version", "prompt", "negative_prompt", "width", "height", "seed", "steps",
            "guidance", "alpha", "mis", "scheduler", "model_id", "instances", "loras",
        }  # fmt: skip
        reader.no_unknown_keys(obj, known, "request")
        version = reader.integer(obj.get("version"), "version")
        if version is not None and version > REQUEST_VERSION:
            reader.fail(
                "version", f"request version {brief(version)} is newer than this app understands ({REQUEST_VERSION})"
            )
        instances: list[InstanceSpec] = []
        raw_instances = reader.sequence(obj.get("instances", []), "instances")
        if len(raw_instances) > MAX_INSTANCES:
            reader.fail("instances", f"{len(raw_instances)} instances; at most {MAX_INSTANCES} are allowed")
        else:
            for index, raw in enumerate(raw_instances):
                try:
                    instances.append(InstanceSpec.from_dict(raw, index))
                except RequestValidationError as exc:
                    reader.problems.extend(exc.problems)
        loras: list[LoraWeight] = []
        raw_loras = reader.sequence(obj.get("loras", []), "loras")
        if len(raw_loras) > MAX_LORAS:
            reader.fail("loras", f"{len(raw_loras)} LoRAs; at most {MAX_LORAS} are allowed")
        else:
            for index, raw in enumerate(raw_loras):
                try:
                    loras.append(LoraWeight.from_dict(raw, f"loras[{index}]"))
                except RequestValidationError as exc:
                    reader.problems.extend(exc.problems)
        values = {
            "prompt": reader.string(obj.get("prompt"), "prompt"),
            "negative_prompt": reader.string(obj.get("negative_prompt", ""), "negative_prompt"),
            "width": reader.integer(obj.get("width"), "width"),
            "height": reader.integer(obj.get("height"), "height"),
            "seed": reader.integer(obj.get("seed"), "seed"),
            "steps": reader.integer(obj.get("steps"), "steps"),
            "guidance": reader.number(obj.get("guidance"), "guidance"),
            "alpha": reader.number(obj.get("alpha"), "alpha"),
            "mis": reader.number(obj.get("mis"), "mis"),
            "scheduler": reader.enum(Scheduler, obj.get("scheduler"), "scheduler"),
            "model_id": reader.string(obj.get("model_id"), "model_id"),
        }
        reader.raise_if_any()
        return cls(instances=tuple(instances), loras=tuple(loras), **values)  # type: ignore[arg-type]

    @classmethod
    def from_json(cls, text: str) -> RenderRequest:
        try:
            data = json.loads(text, parse_constant=reject_constant)
        except (ValueError, RecursionError) as exc:
            raise RequestValidationError([Problem("request", f"request is not valid JSON: {exc}")]) from exc
        return cls.from_dict(data)


# --- validation -------------------------------------------------------------------------------


def instance_label(index: int | None, caption: str) -> str:
    """How messages name an instance: 1-based, as the user sees it, with its caption."""
    short = caption if len(caption) <= 40 else caption[:37] + "..."
    name = "instance" if index is None else f"instance {index + 1}"
    return f"{name} ({short!r})" if short.strip() else name


def instance_problems(inst: InstanceSpec, index: int | None = None) -> list[Problem]:
    """Everything wrong with one instance, each message naming the instance and the field."""
    prefix = "instance" if index is None else f"instances[{index}]"
    label = instance_label(index, inst.caption if isinstance(inst.caption, str) else "")
    problems: list[Problem] = []

    def fail(name: str, message: str) -> None:
        problems.append(Problem(f"{prefix}.{name}", f"{label}: {name}: {message}"))

    # Fields are read as `object`: a dataclass does not enforce its annotations at run time.
    caption: object = inst.caption
    kind: object = inst.kind
    mask: object = inst.mask
    if not isinstance(caption, str) or not caption.strip():
        fail("caption", "the caption is empty")
    elif len(caption) > MAX_CAPTION_CHARS:
        fail("caption", f"the caption has {len(caption)} characters; at most {MAX_CAPTION_CHARS}")
    elif (problem := text_problem(caption)) is not None:
        fail("caption", f"the caption {problem}")
    if not isinstance(kind, InstanceKind):
        fail("kind", f"unknown kind {kind!r}")
        return problems

    if inst.box is not None and _coords_ok(inst.box, 4, "box", fail):
        x0, y0, x1, y1 = inst.box
        if not (x1 > x0 and y1 > y0):
            fail("box", f"the box has no area (x0={x0:g}, y0={y0:g}, x1={x1:g}, y1={y1:g})")
    if inst.point is not None:
        _coords_ok(inst.point, 2, "point", fail)
    for name, points, minimum, maximum in (
        ("scribble", inst.scribble, 2, MAX_SCRIBBLE_POINTS),
        ("polygon", inst.polygon, 3, MAX_POLYGON_POINTS),
    ):
        if points is None:
            continue
        if not isinstance(points, tuple) or not minimum <= len(points) <= maximum:
            count = len(points) if isinstance(points, tuple) else "?"
            fail(name, f"needs {minimum} to {maximum} points, got {count}")
            continue
        for i, p in enumerate(points):
            if not _coords_ok(p, 2, f"{name} point {i + 1}", fail):
                break
    if isinstance(mask, MaskRLE):
        for _name, text in mask_problems(mask):
            fail("mask", text)
    elif mask is not None:
        fail("mask", "must be a MaskRLE")

    required = {
        InstanceKind.BOX: (inst.box is not None, "a box"),
        InstanceKind.POINT: (inst.point is not None, "a point"),
        InstanceKind.SCRIBBLE: (inst.scribble is not None, "scribble points"),
        InstanceKind.MASK: (inst.polygon is not None or inst.mask is not None, "a polygon or a mask bitmap"),
    }
    present, what = required[kind]
    if not present:
        fail("kind", f"a {kind.value} instance needs {what}")
    return problems


def request_problems(req: RenderRequest) -> list[Problem]:
    """Everything wrong with a request, instances included."""
    problems: list[Problem] = []

    def fail(name: str, message: str) -> None:
        problems.append(Problem(name, f"{name}: {message}"))

    # Fields are read as `object`: a dataclass does not enforce its annotations at run time.
    prompt: object = req.prompt
    negative_prompt: object = req.negative_prompt
    scheduler: object = req.scheduler
    instances: object = req.instances
    if not is_int(req.version) or not 1 <= req.version <= REQUEST_VERSION:
        fail("version", f"unsupported request version {req.version!r}")
    if not isinstance(prompt, str):
        fail("prompt", "must be text")
    elif len(prompt) > MAX_CAPTION_CHARS:
        fail("prompt", f"has {len(prompt)} characters; at most {MAX_CAPTION_CHARS}")
    if not isinstance(negative_prompt, str):
        fail("negative_prompt", "must be text")
    for name, size in (("width", req.width), ("height", req.height)):
        if not is_int(size) or not MIN_CANVAS <= size <= MAX_CANVAS or size % CANVAS_MULTIPLE:
            fail(name, f"{brief(size)} is not a multiple of {CANVAS_MULTIPLE} between {MIN_CANVAS} and {MAX_CANVAS}")
    if not is_int(req.seed) or not 0 <= req.seed <= MAX_SEED:
        fail("seed", f"{brief(req.seed)} is not an integer between 0 and {MAX_SEED}")
    if not is_int(req.steps) or not 1 <= req.steps <= MAX_STEPS:
        fail("steps", f"{brief(req.steps)} is not an integer between 1 and {MAX_STEPS}")
    for name, value, high in (
        ("guidance", req.guidance, MAX_GUIDANCE),
        ("alpha", req.alpha, 1.0),
        ("mis", req.mis, 1.0),
    ):
        if not is_number(value) or not 0.0 <= value <= high:
            fail(name, f"{brief(value)} is not a number between 0 and {high:g}")
    if not isinstance(scheduler, Scheduler):
        fail("scheduler", f"unknown scheduler {brief(scheduler)}; use one of {', '.join(s.value for s in Scheduler)}")
    if not isinstance(req.model_id, str) or not req.model_id.strip():
        fail("model_id", "the model id is empty")
    # Text a file or a database cannot hold would fail only when the request is stored.
    for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt), ("model_id", req.model_id)):
        if isinstance(text, str) and (problem := text_problem(text)) is not None:
            fail(name, problem)
    if not isinstance(instances, tuple):
        fail("instances", "must be a tuple of InstanceSpec")
    elif len(instances) > MAX_INSTANCES:
        fail("instances", f"{len(instances)} instances; at most {MAX_INSTANCES} are allowed")
    else:
        for index, inst in enumerate(instances):
            if isinstance(inst, InstanceSpec):
                problems.extend(inst.problems(index))
            else:
                fail(f"instances[{index}]", "must be an InstanceSpec")
    problems.extend(lora_problems(req.loras))
    return problems


def lora_problems(loras: object) -> list[Problem]:
    """What is wrong with a request's LoRAs: at most `MAX_LORAS`, each named as the model settings name
    them, once, with a finite weight within +-`MAX_LORA_WEIGHT`."""
    if not isinstance(loras, tuple):
        return [Problem("loras", "loras: must be a tuple of LoraWeight")]
    if len(loras) > MAX_LORAS:
        return [Problem("loras", f"loras: {len(loras)} LoRAs; at most {MAX_LORAS} are allowed")]
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, lora in enumerate(loras):
        where = f"loras[{index}]"
        if not isinstance(lora, LoraWeight):
            problems.append(Problem(where, f"{where}: must be a LoraWeight"))
            continue
        try:
            name = check_name("LoRA", lora.name)
        except ValueError as exc:
            problems.append(Problem(f"{where}.name", f"{where}: {exc}"))
            continue
        if name in seen:
            problems.append(Problem(f"{where}.name", f"{where}: LoRA {name!r} is listed twice"))
        seen.add(name)
        if finite_number(lora.weight, -MAX_LORA_WEIGHT, MAX_LORA_WEIGHT) is None:
            problems.append(
                Problem(
                    f"{where}.weight",
                    f"{where}: LoRA {name!r}: weight {brief(lora.weight)} is not a number between "
                    f"{-MAX_LORA_WEIGHT:g} and {MAX_LORA_WEIGHT:g}",
                )
            )
    return problems


def _coords_ok(values: Any, length: int, name: str, fail: Any) -> bool:
    if not isinstance(values, tuple) or len(values) != length:
        fail(name, f"needs {length} coordinates")
        return False
    for v in values:
        if finite_number(v) is None:
            fail(name, f"coordinate {brief(v)} is not a finite number")
            return False
        if not 0.0 <= v <= 1.0:
            fail(name, f"coordinate {v:g} is outside the canvas (normalised coordinates are in [0, 1])")
            return False
    return True


def _as_box(values: tuple[float, ...] | None) -> Box | None:
    return None if values is None else (values[0], values[1], values[2], values[3])


def _as_point(values: tuple[float, ...] | None) -> Point | None:
    return None if values is None else (values[0], values[1])
