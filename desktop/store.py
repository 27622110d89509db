"""The editor's one path to the project file: a worker thread that owns every database call.

The GUI never waits on the disk: it asks (`load_scene`, `save_scene`, ...) and gets the answer as a
signal carrying plain data (`desktop.scene_data`). Saves of the same scene coalesce while the worker is
busy, so a burst of edits becomes one short write transaction with the latest state; each edit still
reaches the file well within a second. ORM objects live and die on the worker thread.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from desktop.scene_data import (
    HistoryEntry,
    InstanceData,
    ProjectDefaults,
    ProjectSnapshot,
    SceneData,
    SceneState,
    SceneSummary,
)
from engine.request import RenderRequest, RequestValidationError
from projects.database import Project
from projects.errors import ProjectError
from projects.import_any import read_any
from projects.models import Instance, Render, RenderJob, Scene
from projects.queue import list_jobs
from projects.scenes import (
    SceneLayout,
    StoredInstance,
    add_scene,
    get_settings,
    list_scenes,
    queue_scene,
    queue_sweep,
    random_seed,
    replace_scene_content,
    scene_to_request,
    stored_instances,
)

log = logging.getLogger(__name__)

_STOP = object()


class ProjectStore(QObject):
    """Asynchronous access to one open project. Create it, connect the signals, then `open(path)`."""

    opened = Signal(object)  # ProjectSnapshot
    openFailed = Signal(str)
    sceneLoaded = Signal(object)  # SceneData
    scenesChanged = Signal(object)  # tuple[SceneSummary, ...]: the whole list, in order
    summaryChanged = Signal(object)  # SceneSummary: one scene's row after a save
    sceneAdded = Signal(int)  # the new scene's id (after scenesChanged)
    renderLoaded = Signal(int, object)  # scene id, PNG bytes of its latest render (or None)
    jobsChanged = Signal(object)  # list[JobSnapshot], in queue order
    jobsQueued = Signal(int)  # how many jobs were just added
    historyLoaded = Signal(int, object)  # scene id, list[HistoryEntry] newest first
    imported = Signal(int, object)  # scenes added, list[str] warnings
    saved = Signal(int)  # scene id
    failed = Signal(str)  # a write or read that did not happen, in words

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: queue.Queue[Any] = queue.Queue()
        self._pending_saves: dict[int, SceneData] = {}
        self._pending_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._project: Project | None = None
        self.path: Path | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def open(self, path: Path) -> None:
        if self._thread is not None:
            raise RuntimeError("this store already has a project; make a new store for another")
        self.path = path
        self._thread = threading.Thread(target=self._work, name="project-store", daemon=True)
        self._thread.start()
        self._submit(lambda: self._open(path))

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every request so far has been carried out (closing, tests). True when done."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._tasks.put(done.set)
        return done.wait(timeout)

    def close(self) -> None:
        """Finish the pending writes, then close the project and stop the worker."""
        if self._thread is None:
            return
        self._tasks.put(_STOP)
        self._thread.join(timeout=30)
        self._thread = None

    @property
    def project(self) -> Project | None:
        """The open project, for code on other threads that makes its own sessions (the render worker)."""
        return self._project

    # --- requests --------------------------------------------------------------------------

    def load_scene(self, scene_id: int) -> None:
        self._submit(lambda: self.sceneLoaded.emit(self._read_scene(scene_id)))

    def load_render(self, scene_id: int) -> None:
        """The scene's latest render, for the canvas background."""

        def run() -> None:
            with self._require().read() as session:
                png = session.scalar(
                    select(Render.png).where(Render.scene_id == scene_id).order_by(Render.id.desc()).limit(1)
                )
            self.renderLoaded.emit(scene_id, png)

        self._submit(run)

    def import_files(self, paths: list[Path]) -> None:
        """Official JSON, COCO, labelme files and our PNGs as new scenes: all of them, or none (a bad file
        is reported by name and nothing is added)."""

        def run() -> None:
            read = [(path, item) for path in paths for item in read_any(path)]
            added: list[int] = []
            with self._require().write() as session:
                for _path, item in read:
                    scene = add_scene(session, item.layout)
                    session.flush()
                    added.append(scene.id)
            warnings = [f"{path.name}: {warning}" for path, item in read for warning in item.warnings]
            self._emit_summaries()
            if added:
                self.sceneAdded.emit(added[0])
            self.imported.emit(len(added), warnings)

        self._submit(run)

    # --- the queue ------------------------------------------------------------------------

    def queue_scenes(self, scene_ids: list[int], variations: int = 0) -> None:
        """Freeze each scene as it is now into jobs: one, or `variations` with new seeds.

        Pending saves of those scenes are written first (same thread, in order), so a job renders exactly
        what the user sees."""

        def make(session: Session) -> int:
            count = 0
            for scene_id in scene_ids:
                scene = _scene(session, scene_id)
                for seed in [random_seed() for _ in range(variations)] if variations else [None]:
                    queue_scene(session, scene, seed=seed)
                    count += 1
            return count

        self._submit(lambda: self._queue_jobs(make))

    def queue_sweep(self, scene_id: int, seeds: list[int], alphas: list[float], mises: list[float]) -> None:
        self._submit(
            lambda: self._queue_jobs(
                lambda session: len(queue_sweep(session, _scene(session, scene_id), seeds, alphas, mises))
            )
        )

    def _queue_jobs(self, make: Callable[[Session], int]) -> None:
        """Write pending scene edits first (so a job renders what the user sees), then queue in one write."""
        self._write_all_pending()
        with self._require().write() as session:
            count = make(session)
        self.jobsQueued.emit(count)
        self._emit_jobs()
        self._emit_summaries()

    def refresh_jobs(self) -> None:
        self._submit(self._emit_jobs)

    def job_action(self, action: Callable[[Session], object]) -> None:
        """Run one queue transition (cancel, retry, reorder...) in a short write, then refresh the list."""

        def run() -> None:
            with self._require().write() as session:
                action(session)
            self._emit_jobs()
            self._emit_summaries()

        self._submit(run)

    def load_history(self, scene_id: int) -> None:
        def run() -> None:
            with self._require().read() as session:
                rows = session.execute(
                    select(Render.id, Render.thumbnail, Render.request_json, Render.created_at)
                    .where(Render.scene_id == scene_id)
                    .order_by(Render.id.desc())
                ).all()
            entries = [
                HistoryEntry(render_id, thumbnail, RenderRequest.from_json(request), created.isoformat(" ", "seconds"))
                for render_id, thumbnail, request, created in rows
            ]
            self.historyLoaded.emit(scene_id, entries)

        self._submit(run)

    def load_render_image(self, render_id: int, into: Callable[[int, bytes], None]) -> None:
        """One render's full PNG, handed to `into(render_id, png)` on the worker thread (use a signal)."""

        def run() -> None:
            with self._require().read() as session:
                png = session.scalar(select(Render.png).where(Render.id == render_id))
            if png is not None:
                into(render_id, png)

        self._submit(run)

    def _emit_jobs(self) -> None:
        with self._require().read() as session:
            self.jobsChanged.emit(list_jobs(session))

    def save_scene(self, data: SceneData) -> None:
        with self._pending_lock:
            already_queued = data.scene_id in self._pending_saves
            self._pending_saves[data.scene_id] = data
        if not already_queued:
            self._submit(lambda: self._write_pending(data.scene_id))

    def add_scene(self, name: str, width: int, height: int, caption: str = "") -> None:
        def run() -> None:
            with self._require().write() as session:
                scene = add_scene(session, SceneLayout(name=name, caption=caption, width=width, height=height))
                session.flush()
                scene_id = scene.id
            self._emit_summaries()
            self.sceneAdded.emit(scene_id)

        self._submit(run)

    def duplicate_scene(self, scene_id: int) -> None:
        def run() -> None:
            with self._require().write() as session:
                source = _scene(session, scene_id)
                copy = add_scene(session, _layout_of(source, name=f"{source.name} copy"))
                replace_scene_content(session, copy, _layout_of(source, name=copy.name), stored_instances(source))
                session.flush()
                ids = [s.id for s in list_scenes(session) if s.id != copy.id]
                ids.insert(ids.index(scene_id) + 1, copy.id)
                _reorder(session, ids)
                copy_id = copy.id
            self._emit_summaries()
            self.sceneAdded.emit(copy_id)

        self._submit(run)

    def delete_scene(self, scene_id: int) -> None:
        def run() -> None:
            with self._pending_lock:
                self._pending_saves.pop(scene_id, None)
            with self._require().write() as session:
                session.delete(_scene(session, scene_id))
            self._emit_summaries()

        self._submit(run)

    def reorder_scenes(self, scene_ids: list[int]) -> None:
        def run() -> None:
            with self._require().write() as session:
                _reorder(session, scene_ids)
            self._emit_summaries()

        self._submit(run)

    def refresh_summaries(self) -> None:
        self._submit(self._emit_summaries)

    # --- the worker ------------------------------------------------------------------------

    def _submit(self, task: Callable[[], None]) -> None:
        if self._thread is None:
            raise RuntimeError("no project is open")
        self._tasks.put(task)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is _STOP:
                self._write_all_pending()
                if self._project is not None:
                    self._project.close()
                    self._project = None
                return
            try:
                task()
            except (ProjectError, RequestValidationError, OSError) as exc:
                log.warning("project store: %s", exc)
                self.failed.emit(str(exc))
            except Exception as exc:  # the worker must outlive any one bad request
                log.exception("project store task failed")
                self.failed.emit(f"unexpected error: {exc}")

    def _require(self) -> Project:
        if self._project is None:
            raise ProjectError("the project is not open")
        return self._project

    def _open(self, path: Path) -> None:
        try:
            project = Project.open(path)
        except (ProjectError, OSError) as exc:
            self.openFailed.emit(str(exc))
            return
        self._project = project
        report = project.report
        notes: list[str] = []
        if report.migrated_from:
            notes.append(f"upgraded from schema {report.migrated_from} (backup: {report.backup})")
        if report.requeued_jobs:
            notes.append(f"{len(report.requeued_jobs)} interrupted render(s) are back in the queue")
        if report.failed_jobs:
            notes.append(f"{len(report.failed_jobs)} render(s) failed after being interrupted twice")
        with project.read() as session:
            settings = get_settings(session)
            defaults = ProjectDefaults(
                name=settings.name,
                steps=settings.steps,
                guidance=settings.guidance,
                alpha=settings.alpha,
                mis=settings.mis,
                scheduler=settings.scheduler,
                negative_prompt=settings.negative_prompt,
                model_id=settings.model_id,
                width=settings.width,
                height=settings.height,
            )
            summaries = _summaries(session)
        self.opened.emit(ProjectSnapshot(str(path), defaults, summaries, report.had_unclean_exit, tuple(notes)))

    def _read_scene(self, scene_id: int) -> SceneData:
        with self._require().read() as session:
            return _scene_data(_scene(session, scene_id))

    def _write_pending(self, scene_id: int) -> None:
        with self._pending_lock:
            data = self._pending_saves.pop(scene_id, None)
        if data is None:
            return
        try:
            with self._require().write() as session:
                scene = session.get(Scene, data.scene_id)
                if scene is None:
                    return  # deleted meanwhile
                replace_scene_content(session, scene, _layout(data), _stored(data))
                session.flush()
                summaries = _summaries(session, only=scene_id)
        except Exception:
            # Keep the edit: the next save of this scene (or closing) tries again with the latest state.
            with self._pending_lock:
                self._pending_saves.setdefault(scene_id, data)
            raise
        self.saved.emit(scene_id)
        for summary in summaries:
            self.summaryChanged.emit(summary)

    def _write_all_pending(self) -> None:
        with self._pending_lock:
            scene_ids = list(self._pending_saves)
        for scene_id in scene_ids:
            try:
                self._write_pending(scene_id)
            except Exception as exc:
                log.error("could not save scene %s while closing: %s", scene_id, exc)
                self.failed.emit(str(exc))

    def _emit_summaries(self) -> None:
        with self._require().read() as session:
            self.scenesChanged.emit(_summaries(session))


# --- conversions (worker thread only) ------------------------------------------------------


def _scene(session: Session, scene_id: int) -> Scene:
    scene = session.get(Scene, scene_id)
    if scene is None:
        raise ProjectError(f"scene {scene_id} no longer exists")
    return scene


def _scene_data(scene: Scene) -> SceneData:
    instances = tuple(
        InstanceData(spec=item.spec, locked=item.locked, color=item.color) for item in stored_instances(scene)
    )
    return SceneData(
        scene_id=scene.id,
        name=scene.name,
        caption=scene.caption,
        negative_prompt=scene.negative_prompt,
        width=scene.width,
        height=scene.height,
        seed=scene.seed,
        overrides=dict(scene.overrides or {}),
        instances=instances,
    )


def _layout(data: SceneData) -> SceneLayout:
    return SceneLayout(
        name=data.name,
        caption=data.caption,
        width=data.width,
        height=data.height,
        seed=data.seed,
        negative_prompt=data.negative_prompt,
        overrides=dict(data.overrides),
    )


def _layout_of(scene: Scene, name: str) -> SceneLayout:
    return SceneLayout(
        name=name,
        caption=scene.caption,
        width=scene.width,
        height=scene.height,
        seed=scene.seed,
        negative_prompt=scene.negative_prompt,
        overrides=dict(scene.overrides or {}),
    )


def _stored(data: SceneData) -> list[StoredInstance]:
    return [StoredInstance(inst.spec, inst.locked, inst.color) for inst in data.instances]


def _reorder(session: Session, scene_ids: list[int]) -> None:
    scenes = {scene.id: scene for scene in list_scenes(session)}
    ordered = [scenes[i] for i in scene_ids if i in scenes]
    ordered += [scene for i, scene in scenes.items() if i not in scene_ids]
    for position, scene in enumerate(ordered):
        scene.position = position


def _summaries(session: Session, only: int | None = None) -> tuple[SceneSummary, ...]:
    """The scene list's rows (all of them, or the one scene `only`), in four queries whatever the count."""
    scenes = list_scenes(session) if only is None else [_scene(session, only)]

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
    if scene.overrides.get("seed_mode") == "random":
        current = dataclasses.replace(current, seed=rendered.seed)  # a new seed is not a change
    return SceneState.RENDERED if current == rendered else SceneState.CHANGED
