"""The project file's scenes, renders and settings read into plain data (`projects.scene_data`) and
written back: the one place that converts between the ORM and the shape the editor works on.

Every function takes an open session and returns plain values, so a caller on another thread (the
editor's store) never holds an ORM object.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, load_only

from engine.request import RenderRequest, RequestValidationError
from projects.errors import ProjectError
from projects.models import Instance, Render, RenderJob, Scene
from projects.placement import best_render, placement_thresholds, render_report
from projects.scene_data import HistoryEntry, InstanceData, SceneData, SceneState, SceneSummary
from projects.scene_settings import OVERRIDE_KEYS, SceneSettings
from projects.scenes import (
    SceneLayout,
    add_instance,
    add_scene,
    instance_spec,
    list_scenes,
    scene_to_request,
)

log = logging.getLogger(__name__)


def get_scene(session: Session, scene_id: int) -> Scene:
    scene = session.get(Scene, scene_id)
    if scene is None:
        raise ProjectError(f"scene {scene_id} no longer exists")
    return scene


# --- one scene ---------------------------------------------------------------------------------


def read_scene(scene: Scene) -> SceneData:
    return SceneData(
        scene_id=scene.id,
        name=scene.name,
        caption=scene.caption,
        negative_prompt=scene.negative_prompt,
        width=scene.width,
        height=scene.height,
        seed=scene.seed,
        settings=readable_settings(scene.overrides),
        instances=tuple(
            InstanceData(spec=instance_spec(item), locked=item.locked, color=item.color) for item in scene.instances
        ),
    )


def readable_settings(overrides: Any) -> SceneSettings:
    """A scene's settings for editing: what of its stored overrides is valid (a damaged or hand-edited file
    still opens; the invalid entries are logged and left out, as a render would refuse them anyway)."""
    try:
        return SceneSettings.from_overrides(overrides)
    except RequestValidationError as exc:
        log.warning("scene overrides %r: %s; editing without the invalid ones", overrides, exc)
    kept: dict[str, Any] = {}
    for key in OVERRIDE_KEYS if isinstance(overrides, dict) else ():
        if key in overrides:
            try:
                SceneSettings.from_overrides({key: overrides[key]})
            except RequestValidationError:
                continue
            kept[key] = overrides[key]
    return SceneSettings.from_overrides(kept)


def write_scene(session: Session, scene: Scene, data: SceneData) -> None:
    """Write an edited scene back in one go, its instances in slot order. The editor sends whole scenes (at
    most 30 instances), which keeps every write one short transaction and makes the stored slot order
    exactly the editor's."""
    scene.name = data.name
    scene.caption = data.caption
    scene.negative_prompt = data.negative_prompt
    scene.width = data.width
    scene.height = data.height
    scene.seed = data.seed
    scene.overrides = data.settings.to_overrides()
    scene.instances.clear()
    session.flush()  # the old rows go before the new ones take their positions
    for position, item in enumerate(data.instances):
        instance = add_instance(session, scene, item.spec, locked=item.locked)
        instance.position = position
        if item.color:
            instance.color = item.color


def copy_scene(session: Session, scene_id: int) -> int:
    """A copy of the scene ("… copy"), placed right after it; returns the copy's id."""
    source = read_scene(get_scene(session, scene_id))
    copy = add_scene(session, SceneLayout(f"{source.name} copy", source.caption, source.width, source.height))
    write_scene(session, copy, dataclasses.replace(source, scene_id=copy.id, name=copy.name))
    session.flush()
    ids = [s.id for s in list_scenes(session) if s.id != copy.id]
    ids.insert(ids.index(scene_id) + 1, copy.id)
    reorder_scenes(session, ids)
    return copy.id


def reorder_scenes(session: Session, scene_ids: list[int]) -> None:
    """Put the scenes in this order; scenes the list leaves out keep their order after it."""
    scenes = {scene.id: scene for scene in list_scenes(session)}
    ordered = [scenes[i] for i in scene_ids if i in scenes]
    ordered += [scene for i, scene in scenes.items() if i not in scene_ids]
    for position, scene in enumerate(ordered):
        scene.position = position


# --- renders -----------------------------------------------------------------------------------


def latest_render_png(session: Session, scene_id: int) -> bytes | None:
    return session.scalar(select(Render.png).where(Render.scene_id == scene_id).order_by(Render.id.desc()).limit(1))


def render_png(session: Session, render_id: int) -> bytes | None:
    return session.scalar(select(Render.png).where(Render.id == render_id))


def history(session: Session, scene_id: int) -> list[HistoryEntry]:
    """The scene's renders, newest first (thumbnails; the full images load on demand), each with its placement
    check judged by the project's current thresholds and the best of each re-roll chain marked."""
    renders = session.scalars(
        select(Render)
        .options(
            load_only(
                Render.id,
                Render.thumbnail,
                Render.request_json,
                Render.created_at,
                Render.placement,
                Render.reroll_group,
            )
        )
        .where(Render.scene_id == scene_id)
        .order_by(Render.id.desc())
    ).all()
    thresholds = placement_thresholds(session)
    chains: dict[int, list[Render]] = {}
    for render in renders:
        if render.reroll_group is not None:
            chains.setdefault(render.reroll_group, []).append(render)
    best = {best_render(chain, thresholds) for chain in chains.values() if len(chain) > 1}
    return [
        HistoryEntry(
            render.id,
            render.thumbnail,
            RenderRequest.from_json(render.request_json),
            render.created_at.isoformat(" ", "seconds"),
            placement=render_report(render),
            thresholds=thresholds,
            best_of_chain=render in best,
        )
        for render in renders
    ]


# --- the scene list ----------------------------------------------------------------------------


def scene_summaries(session: Session, only: int | None = None) -> tuple[SceneSummary, ...]:
    """The scene list's rows (all of them, or the one scene `only`), in four queries whatever the count."""
    scenes = list_scenes(session) if only is None else [get_scene(session, only)]

    def restrict(query: Any, column: Any) -> Any:
        return query if only is None else query.where(column == only)

    counts = dict(
        session.execute(
            restrict(select(Instance.scene_id, func.count(Instance.id)), Instance.scene_id).group_by(Instance.scene_id)
        ).all()
    )
    latest_job = dict(
        session.execute(
            select(RenderJob.scene_id, RenderJob.status).where(
                RenderJob.id.in_(
                    restrict(select(func.max(RenderJob.id)), RenderJob.scene_id).group_by(RenderJob.scene_id)
                )
            )
        ).all()
    )
    latest_render = {
        row[0]: (row[1], row[2])
        for row in session.execute(
            select(Render.scene_id, Render.request_json, Render.thumbnail).where(
                Render.id.in_(restrict(select(func.max(Render.id)), Render.scene_id).group_by(Render.scene_id))
            )
        ).all()
    }
    return tuple(
        SceneSummary(
            scene_id=scene.id,
            name=scene.name,
            instance_count=counts.get(scene.id, 0),
            state=_state(session, scene, latest_job.get(scene.id), latest_render.get(scene.id)),
            thumbnail=latest_render[scene.id][1] if scene.id in latest_render else None,
        )
        for scene in scenes
    )


def _state(session: Session, scene: Scene, job_status: str | None, render: tuple[str, bytes] | None) -> SceneState:
    if job_status == "pending":
        return SceneState.QUEUED
    if job_status == "running":
        return SceneState.RENDERING
    if job_status == "failed":
        return SceneState.FAILED
    if render is None:
        return SceneState.NEVER_RENDERED
    try:
        current = scene_to_request(session, scene)
        rendered = RenderRequest.from_json(render[0])
    except (RequestValidationError, ValueError):
        return SceneState.CHANGED
    if readable_settings(scene.overrides).seed_mode == "random":
        current = dataclasses.replace(current, seed=rendered.seed)  # a new seed is not a change
    return SceneState.RENDERED if current == rendered else SceneState.CHANGED
