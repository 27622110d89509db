"""Scenes and their instances: creating them, finding them, and turning them into plain data.

`SceneLayout` is the plain-data view of a scene (what importers produce and exporters consume);
`scene_to_request` freezes a scene into a `RenderRequest`, project defaults overridden by the scene.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest
from projects.errors import ProjectError, SceneNotFoundError
from projects.models import Instance, ProjectSettings, Scene
from projects.queue import JobSnapshot, enqueue
from projects.scene_data import INSTANCE_PALETTE, InstanceData, SceneData, scene_request
from projects.scene_settings import ProjectDefaults, SceneSettings


@dataclass(frozen=True)
class SceneLayout:
    """A scene as plain data: what it shows, independent of any database."""

    name: str
    caption: str
    width: int
    height: int
    instances: tuple[InstanceSpec, ...] = ()
    seed: int = 0
    negative_prompt: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


def get_settings(session: Session) -> ProjectSettings:
    settings = session.get(ProjectSettings, 1)
    if settings is None:
        raise ProjectError("the project file has no settings row; it is damaged")
    return settings


def project_defaults(session: Session) -> ProjectDefaults:
    """The project's render settings as plain data (the one place the settings row is read into them)."""
    row = get_settings(session)
    return ProjectDefaults(
        name=row.name,
        steps=row.steps,
        guidance=row.guidance,
        alpha=row.alpha,
        mis=row.mis,
        scheduler=row.scheduler,
        negative_prompt=row.negative_prompt,
        model_id=row.model_id,
        width=row.width,
        height=row.height,
    )


def add_scene(session: Session, layout: SceneLayout) -> Scene:
    """Append a scene with the layout's instances, in their order."""
    last = session.scalar(select(func.max(Scene.position)))
    scene = Scene(
        position=(last if last is not None else -1) + 1,
        name=layout.name,
        caption=layout.caption,
        negative_prompt=layout.negative_prompt,
        width=layout.width,
        height=layout.height,
        seed=layout.seed,
        overrides=dict(layout.overrides),
    )
    session.add(scene)
    for spec in layout.instances:
        add_instance(session, scene, spec)
    session.flush()
    return scene


def add_instance(session: Session, scene: Scene, spec: InstanceSpec, *, locked: bool = False) -> Instance:
    position = len(scene.instances)
    instance = Instance(
        position=position,
        caption=spec.caption,
        kind=spec.kind.value,
        geometry=geometry_of(spec),
        locked=locked,
        color=INSTANCE_PALETTE[position % len(INSTANCE_PALETTE)],
    )
    scene.instances.append(instance)
    return instance


def geometry_of(spec: InstanceSpec) -> dict[str, Any]:
    """The location fields of an instance, as stored in `instances.geometry`."""
    data = spec.to_dict()
    del data["caption"], data["kind"]
    return data


def instance_spec(instance: Instance) -> InstanceSpec:
    """An instance row as an `InstanceSpec` (not validated: a scene may hold unfinished instances)."""
    geometry = instance.geometry or {}

    def points(name: str) -> tuple[tuple[float, float], ...] | None:
        raw = geometry.get(name)
        return None if raw is None else tuple((float(x), float(y)) for x, y in raw)

    box = geometry.get("box")
    point = geometry.get("point")
    mask = geometry.get("mask")
    return InstanceSpec(
        caption=instance.caption,
        kind=InstanceKind(instance.kind),
        box=None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        point=None if point is None else (float(point[0]), float(point[1])),
        scribble=points("scribble"),
        polygon=points("polygon"),
        mask=None if mask is None else MaskRLE.from_dict(mask),
    )


def scene_layout(scene: Scene) -> SceneLayout:
    return SceneLayout(
        name=scene.name,
        caption=scene.caption,
        width=scene.width,
        height=scene.height,
        instances=tuple(instance_spec(inst) for inst in scene.instances),
        seed=scene.seed,
        negative_prompt=scene.negative_prompt,
        overrides=dict(scene.overrides or {}),
    )


def list_scenes(session: Session) -> list[Scene]:
    return list(session.scalars(select(Scene).order_by(Scene.position, Scene.id)))


def find_scene(session: Session, ref: str | int) -> Scene:
    """A scene by id (a number) or by exact name; ambiguous names are an error listing the ids."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        scene = session.get(Scene, int(ref))
        if scene is not None:
            return scene
    matches = list(session.scalars(select(Scene).where(Scene.name == str(ref)).order_by(Scene.id)))
    if len(matches) == 1:
        return matches[0]
    if matches:
        ids = ", ".join(str(s.id) for s in matches)
        raise SceneNotFoundError(f"{len(matches)} scenes are named {str(ref)!r} (ids {ids}); give the id")
    raise SceneNotFoundError(f"no scene with id or name {str(ref)!r}")


def scene_to_request(session: Session, scene: Scene) -> RenderRequest:
    """Freeze a scene into a validated request; raises RequestValidationError naming what is wrong."""
    data = SceneData(
        scene_id=scene.id,
        name=scene.name,
        caption=scene.caption,
        negative_prompt=scene.negative_prompt,
        width=scene.width,
        height=scene.height,
        seed=scene.seed,
        settings=scene_settings(scene),  # strict: invalid stored overrides refuse the render
        instances=tuple(InstanceData(instance_spec(inst)) for inst in scene.instances),
    )
    return scene_request(data, project_defaults(session))


def scene_settings(scene: Scene) -> SceneSettings:
    """The scene's own settings; RequestValidationError if its stored overrides are not valid."""
    return SceneSettings.from_overrides(scene.overrides)


def queue_scene(
    session: Session, scene: Scene, *, seed: int | None = None, priority: int = 0, until_placed: int = 0
) -> JobSnapshot:
    """Freeze the scene as it is now into a pending job. A scene in "random" seed mode, or an explicit
    `seed` (variations), renders with that seed; otherwise with the scene's own, so iterating keeps the image.
    `until_placed` N > 1: a render that misses an instance tries the next seed, up to N (projects.queue)."""
    request = scene_to_request(session, scene)
    if seed is None and scene_settings(scene).seed_mode == "random":
        seed = random_seed()
    if seed is not None:
        request = dataclasses.replace(request, seed=seed)
    return enqueue(session, request, scene.id, priority, until_placed=until_placed)


def random_seed() -> int:
    return secrets.randbelow(2**31)


def queue_sweep(
    session: Session,
    scene: Scene,
    seeds: list[int],
    alphas: list[float],
    mises: list[float],
    *,
    until_placed: int = 0,
) -> list[JobSnapshot]:
    """One job per (seed, alpha, mis), the scene otherwise as it is now: a grid to compare settings. With
    `until_placed`, each cell that misses an instance tries the next seeds (its own re-roll chain)."""
    base = scene_to_request(session, scene)
    jobs = []
    for seed in seeds:
        for alpha in alphas:
            for mis in mises:
                request = dataclasses.replace(base, seed=seed, alpha=alpha, mis=mis)  # validated on creation
                jobs.append(enqueue(session, request, scene.id, until_placed=until_placed))
    return jobs
