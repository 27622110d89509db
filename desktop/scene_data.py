"""The editor's plain-data view of a project: what crosses from the store's thread to the GUI and back.

ORM objects never leave the store's thread; these frozen values do. An instance carries a `uid` that is
the editor's own (database ids change when a scene is written back), stable for the session.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects.scene_settings import ProjectDefaults as ProjectDefaults  # re-exported for desktop/
from projects.scenes import INSTANCE_PALETTE

_uids = itertools.count(1)


def next_uid() -> int:
    return next(_uids)


@dataclass(frozen=True)
class InstanceData:
    spec: InstanceSpec
    uid: int = field(default_factory=next_uid)
    locked: bool = False
    color: str = INSTANCE_PALETTE[0]

    @property
    def caption(self) -> str:
        return self.spec.caption

    @property
    def kind(self) -> InstanceKind:
        return self.spec.kind

    def with_spec(self, spec: InstanceSpec) -> InstanceData:
        return replace(self, spec=spec)


class SceneState(StrEnum):
    NEVER_RENDERED = "never rendered"
    QUEUED = "queued"
    RENDERING = "rendering"
    RENDERED = "rendered"
    FAILED = "failed"
    CHANGED = "changed since last render"


@dataclass(frozen=True)
class SceneData:
    scene_id: int
    name: str
    caption: str = ""
    negative_prompt: str | None = None
    width: int = 512
    height: int = 512
    seed: int = 0
    overrides: Mapping[str, Any] = field(default_factory=dict)
    instances: tuple[InstanceData, ...] = ()

    def instance(self, uid: int) -> InstanceData | None:
        return next((inst for inst in self.instances if inst.uid == uid), None)

    def index_of(self, uid: int) -> int:
        return next(i for i, inst in enumerate(self.instances) if inst.uid == uid)

    def free_color(self) -> str:
        """The first palette colour no instance of the scene uses (cycling when all are taken)."""
        used = [inst.color for inst in self.instances]
        for color in INSTANCE_PALETTE:
            if color not in used:
                return color
        return INSTANCE_PALETTE[len(used) % len(INSTANCE_PALETTE)]


@dataclass(frozen=True)
class SceneSummary:
    """One row of the scene list."""

    scene_id: int
    name: str
    instance_count: int
    state: SceneState
    thumbnail: bytes | None = None  # PNG of the latest render


@dataclass(frozen=True)
class ProjectSnapshot:
    """What the window needs right after opening a project."""

    path: str
    defaults: ProjectDefaults
    scenes: tuple[SceneSummary, ...]
    unclean_exit: bool = False
    notes: tuple[str, ...] = ()  # what the open did (jobs requeued, a migration), in words


@dataclass(frozen=True)
class HistoryEntry:
    """One render of a scene, for the history strip (the full image is loaded on demand)."""

    render_id: int
    thumbnail: bytes
    request: RenderRequest
    created: str
