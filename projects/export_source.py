"""What an export reads: which renders are selected, and each one's image and layout, as plain data.

Every read is a short session of its own: the selection first (ids and small columns, no images),
then one render at a time, so a long export neither holds a snapshot open nor keeps all images in
memory, and no ORM object leaves this module.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import case, func, select

from engine.placement_report import PlacementReport, PlacementThresholds
from engine.request import RenderRequest, RequestValidationError
from projects.database import Project
from projects.export_errors import ExportError, NothingToExportError
from projects.models import Render, Scene
from projects.placement import placement_thresholds, stored_report
from projects.scenes import find_scene, get_settings


@dataclass(frozen=True)
class RenderRef:
    """A selected render, without its image."""

    render_id: int
    scene_id: int
    scene_name: str
    seed: int
    created_at: dt.datetime
    number: int  # its place among its scene's renders, oldest first (1, 2, ...): the same in every export
    instances: int = 0  # how many instances its layout has
    placement: dict[str, Any] | None = None  # its placement check as stored; None: not checked

    @property
    def id(self) -> int:  # the name projects.placement.best_render reads
        return self.render_id

    @property
    def report(self) -> PlacementReport | None:
        return stored_report(self.placement, self.render_id)


@dataclass(frozen=True)
class RenderData:
    """One render as exported: the stored PNG and the layout it was rendered from."""

    ref: RenderRef
    png: bytes
    request: RenderRequest
    request_json: str
    model_hashes: dict[str, Any]

    @property
    def report(self) -> PlacementReport | None:
        return self.ref.report

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the image came from, for dataset files."""
        return {
            "render_id": self.ref.render_id,
            "scene_id": self.ref.scene_id,
            "scene_name": self.ref.scene_name,
            "seed": self.ref.seed,
            "created_at": self.ref.created_at.isoformat(timespec="seconds") + "Z",
            "model_hashes": self.model_hashes,
            "request": self.request.to_dict(),
        }


@dataclass(frozen=True)
class Selection:
    project_name: str
    renders: tuple[RenderRef, ...]
    scenes_without_renders: int
    thresholds: PlacementThresholds  # the project's, read with the selection


def select_renders(
    project: Project,
    which: Literal["latest", "all"],
    scenes: Sequence[str | int] | None,
    render_ids: Sequence[int] | None,
) -> Selection:
    """The renders to export, in scene order then render order (or in the order of `render_ids`)."""
    # Numbered among all of its scene's renders, whatever is selected: renders are never deleted one by
    # one, so a render keeps its number (and its file name's {index}) from one export to the next.
    numbered = select(
        Render.id.label("render_id"),
        func.row_number().over(partition_by=Render.scene_id, order_by=Render.id).label("number"),
    ).subquery()
    # Counted in SQL, so the selection reads no layout; a damaged request counts 0 (its load then fails).
    valid = func.json_valid(Render.request_json) == 1
    instances = case((valid, func.coalesce(func.json_array_length(Render.request_json, "$.instances"), 0)), else_=0)
    columns = (
        Render.id,
        Render.scene_id,
        Scene.name,
        Render.seed,
        Render.created_at,
        numbered.c.number,
        instances,
        Render.placement,
    )
    with project.read() as session:
        project_name = get_settings(session).name
        thresholds = placement_thresholds(session)
        if render_ids is not None:
            if scenes is not None:
                raise ExportError("give either render ids or scenes to export, not both")
            wanted = list(dict.fromkeys(render_ids))
            if not wanted:
                raise NothingToExportError("no renders were selected; there is nothing to export")
            query = _joined(select(*columns), numbered).where(Render.id.in_(wanted))
            found = {row[0]: RenderRef(*row) for row in session.execute(query)}
            missing = [str(i) for i in wanted if i not in found]
            if missing:
                raise NothingToExportError(f"there is no render {', '.join(missing)} in this project")
            return Selection(project_name, tuple(found[i] for i in wanted), 0, thresholds)

        if scenes is None:
            rows = session.execute(select(Scene.id, Scene.name).order_by(Scene.position, Scene.id))
            chosen = [(scene_id, name) for scene_id, name in rows]
        else:
            chosen = []
            for ref in scenes:
                scene = find_scene(session, ref)
                chosen.append((scene.id, scene.name))
            chosen = list(dict.fromkeys(chosen))
        if not chosen:
            raise NothingToExportError("the project has no scenes; there is nothing to export")
        query = _joined(select(*columns), numbered)
        query = query.where(Render.scene_id.in_([scene_id for scene_id, _ in chosen])).order_by(Render.id)
        by_scene: dict[int, list[RenderRef]] = {}
        for row in session.execute(query):
            by_scene.setdefault(row[1], []).append(RenderRef(*row))

    selected: list[RenderRef] = []
    empty = 0
    for scene_id, name in chosen:
        renders = by_scene.get(scene_id, [])
        if not renders:
            if scenes is not None:
                raise NothingToExportError(
                    f"scene {name!r} (id {scene_id}) has no renders; render it first or leave it out"
                )
            empty += 1
            continue
        selected.extend(renders[-1:] if which == "latest" else renders)
    if not selected:
        raise NothingToExportError("no scene of the project has a render yet; render some scenes first")
    return Selection(project_name, tuple(selected), empty, thresholds)


def _joined(query: Any, numbered: Any) -> Any:
    return query.join(Scene, Render.scene_id == Scene.id).join(numbered, numbered.c.render_id == Render.id)


def load_render(project: Project, ref: RenderRef) -> RenderData:
    """The image and request of one selected render, read in a session of its own."""
    with project.read() as session:
        row = session.execute(
            select(Render.png, Render.request_json, Render.model_hashes).where(Render.id == ref.render_id)
        ).one_or_none()
    if row is None:
        raise ExportError(f"render {ref.render_id} of scene {ref.scene_name!r} was deleted during the export")
    png, request_json, model_hashes = row
    try:
        request = RenderRequest.from_json(request_json)
    except RequestValidationError as exc:
        raise ExportError(f"render {ref.render_id} has a damaged request, so it has no layout: {exc}") from exc
    # A copy through JSON: the stored value is the database's, the exported one plain data.
    hashes = json.loads(json.dumps(model_hashes or {}))
    return RenderData(ref=ref, png=bytes(png), request=request, request_json=request_json, model_hashes=hashes)
