"""The editor's one path to the project file: a worker thread that owns every database call.

The GUI never waits on the disk: it asks (`load_scene`, `save_scene`, ...) and gets the answer as a
signal carrying plain data (`desktop.scene_data`). Saves of the same scene coalesce while the worker is
busy, so a burst of edits becomes one short write transaction with the latest state; each edit still
reaches the file well within a second. ORM objects live and die on the worker thread.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from sqlalchemy.orm import Session

from engine.placement_report import PlacementThresholds
from engine.request import Problem, RequestValidationError
from projects.database import Project
from projects.errors import ProjectError
from projects.import_any import read_any
from projects.models import Scene
from projects.placement import placement_thresholds, set_placement_thresholds
from projects.queue import list_jobs
from projects.scene_data import ProjectSnapshot, SceneData
from projects.scene_records import (
    copy_scene,
    get_scene,
    history,
    latest_render_png,
    read_scene,
    render_png,
    reorder_scenes,
    scene_summaries,
    write_scene,
)
from projects.scenes import SceneLayout, add_scene, project_defaults, queue_scene, queue_sweep, random_seed

log = logging.getLogger(__name__)

_STOP = object()


class QueueRefused(Exception):
    """A scene that cannot be rendered as it is: nothing of the request is queued."""

    def __init__(self, scene_id: int, problems: Sequence[Problem]) -> None:
        self.scene_id = scene_id
        self.problems = tuple(problems)
        super().__init__(f"scene {scene_id}: " + "; ".join(str(p) for p in self.problems))


@contextmanager
def _refusing(scene_id: int) -> Iterator[None]:
    """Turn the request's validation error for this scene into a refusal that names the scene."""
    try:
        yield
    except RequestValidationError as exc:
        raise QueueRefused(scene_id, exc.problems) from exc


_INSTANCE_FIELD = re.compile(r"instances\[(\d+)\]\.(\w+)")


def problems_in_words(problems: Sequence[Problem]) -> list[str]:
    """What keeps a scene from rendering, as the user would say it: "instance 3 has no caption" (the
    request says "instance 3: caption: the caption is empty"), instances counted from 1 as in the list."""
    uncaptioned: list[int] = []
    words: list[str] = []
    for problem in problems:
        match = _INSTANCE_FIELD.fullmatch(problem.field)
        if match is None:
            words.append(problem.message)
            continue
        slot, name = int(match[1]) + 1, match[2]
        if name == "caption" and problem.message.endswith("the caption is empty"):
            uncaptioned.append(slot)
            continue
        # "instance 3 ('a cat'): box: the box has no area" -> "instance 3 ('a cat'): the box has no area"
        label, found, detail = problem.message.partition(f": {name}: ")
        words.append(f"{label}: {detail}" if found else problem.message)
    if len(uncaptioned) == 1:
        words.insert(0, f"instance {uncaptioned[0]} has no caption")
    elif uncaptioned:
        listed = ", ".join(str(slot) for slot in uncaptioned[:-1])
        words.insert(0, f"instances {listed} and {uncaptioned[-1]} have no caption")
    return words


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
    importFailed = Signal(str)  # why the files were not imported (nothing was added)
    saved = Signal(int)  # scene id
    queueRefused = Signal(int, object)  # scene id, list[str]: why it cannot be rendered, in words; nothing queued
    failed = Signal(str)  # a write or read that did not happen, in words
    thresholdsLoaded = Signal(object)  # PlacementThresholds: the project's, as read
    thresholdsChanged = Signal(object)  # PlacementThresholds: just stored (renders are judged by them now)

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
                png = latest_render_png(session, scene_id)
            self.renderLoaded.emit(scene_id, png)

        self._submit(run)

    def import_files(self, paths: list[Path]) -> None:
        """Official JSON, COCO, labelme files and our PNGs as new scenes: all of them, or none (a bad file
        is reported by name and nothing is added)."""

        def run() -> None:
            try:
                read = [(path, item) for path in paths for item in read_any(path)]
            except (ProjectError, RequestValidationError, OSError) as exc:  # nothing was added
                log.warning("import: %s", exc)
                self.importFailed.emit(str(exc))
                return
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

    def queue_scenes(self, scene_ids: list[int], variations: int = 0, until_placed: int = 0) -> None:
        """Freeze each scene as it is now into jobs: one, or `variations` with new seeds; with `until_placed`
        N, each job that misses an instance tries the next seeds, up to N.

        Pending saves of those scenes are written first (same thread, in order), so a job renders exactly
        what the user sees."""

        def make(session: Session) -> int:
            count = 0
            for scene_id in scene_ids:
                scene = get_scene(session, scene_id)
                with _refusing(scene_id):
                    for seed in [random_seed() for _ in range(variations)] if variations else [None]:
                        queue_scene(session, scene, seed=seed, until_placed=until_placed)
                        count += 1
            return count

        self._submit(lambda: self._queue_jobs(make))

    def queue_sweep(
        self, scene_id: int, seeds: list[int], alphas: list[float], mises: list[float], until_placed: int = 0
    ) -> None:
        def make(session: Session) -> int:
            scene = get_scene(session, scene_id)
            with _refusing(scene_id):
                return len(queue_sweep(session, scene, seeds, alphas, mises, until_placed=until_placed))

        self._submit(lambda: self._queue_jobs(make))

    def _queue_jobs(self, make: Callable[[Session], int]) -> None:
        """Write pending scene edits first (so a job renders what the user sees), then queue in one write.

        A scene that cannot be rendered as it is (an instance without a caption) queues nothing, and is
        reported as `queueRefused`, not as a failed write: its edits were saved all the same."""
        self._write_all_pending()
        try:
            with self._require().write() as session:
                count = make(session)
        except QueueRefused as refused:
            log.info("not queued: %s", refused)
            self.queueRefused.emit(refused.scene_id, problems_in_words(refused.problems))
            return
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
                entries = history(session, scene_id)
            self.historyLoaded.emit(scene_id, entries)

        self._submit(run)

    def load_thresholds(self) -> None:
        def run() -> None:
            with self._require().read() as session:
                thresholds = placement_thresholds(session)
            self.thresholdsLoaded.emit(thresholds)

        self._submit(run)

    def set_thresholds(self, thresholds: PlacementThresholds) -> None:
        """Judge the project's renders by `thresholds` from now on (nothing is rendered again)."""

        def run() -> None:
            with self._require().write() as session:
                set_placement_thresholds(session, thresholds)
            self.thresholdsChanged.emit(thresholds)

        self._submit(run)

    def load_render_image(self, render_id: int, into: Callable[[int, bytes], None]) -> None:
        """One render's full PNG, handed to `into(render_id, png)` on the worker thread (use a signal)."""

        def run() -> None:
            with self._require().read() as session:
                png = render_png(session, render_id)
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
                copy_id = copy_scene(session, scene_id)
            self._emit_summaries()
            self.sceneAdded.emit(copy_id)

        self._submit(run)

    def delete_scene(self, scene_id: int) -> None:
        def run() -> None:
            with self._pending_lock:
                self._pending_saves.pop(scene_id, None)
            with self._require().write() as session:
                session.delete(get_scene(session, scene_id))
            self._emit_summaries()

        self._submit(run)

    def reorder_scenes(self, scene_ids: list[int]) -> None:
        def run() -> None:
            with self._require().write() as session:
                reorder_scenes(session, scene_ids)
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
        if project.read_only:  # the file or its folder cannot be written: edits are refused with this reason
            notes.append(f"{path.name} is read-only: you can view and export it, but changes are not saved")
        with project.read() as session:
            defaults = project_defaults(session)
            summaries = scene_summaries(session)
        self.opened.emit(ProjectSnapshot(str(path), defaults, summaries, report.had_unclean_exit, tuple(notes)))

    def _read_scene(self, scene_id: int) -> SceneData:
        with self._require().read() as session:
            return read_scene(get_scene(session, scene_id))

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
                write_scene(session, scene, data)
                session.flush()
                summaries = scene_summaries(session, only=scene_id)
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
            self.scenesChanged.emit(scene_summaries(session))

    # --- readers on other threads ----------------------------------------------------------

    def project_for_reading(self, timeout: float | None = 10.0) -> Project:
        """The open project, for a background task that reads it (an export); call it on that task's thread.

        It first waits (up to `timeout`) until the requests made so far are carried out, so the reader sees
        every edit made before it began. The caller opens only short `read()` sessions of its own and lets
        no ORM object out of them; WAL lets those reads run beside this worker's writes, so a long read
        never delays a save. Raises ProjectError when no project is open.
        """
        if threading.current_thread() is not self._thread:  # on this worker, waiting for itself would hang
            self.flush(timeout)
        return self._require()
