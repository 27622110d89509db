"""A project's scenes as plain data: the one shape that crosses from the project file to the editor and
back. Frozen values, no ORM and no Qt; `projects.scene_records` converts them to and from the database.

An instance carries a `uid` that is the editor's own (database ids change when a scene is written back),
stable for the session; it takes no part in comparing instances' content.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Final

from engine.placement_report import PlacementReport, PlacementThresholds
from engine.request import InstanceKind, InstanceSpec, RenderRequest
from projects.scene_settings import ProjectDefaults, SceneSettings

# Distinct, readable on dark and light canvases; instance i gets colour i mod len.
INSTANCE_PALETTE: Final = (
    "#4f9dff", "#ff7a45", "#52c41a", "#f759ab", "#fadb14", "#9254de",
    "#13c2c2", "#ff4d4f", "#a0d911", "#2f54eb", "#fa8c16", "#eb2f96",
)  # fmt: skip

_uids = itertools.count(1)


def next_uid() -> int:
    return next(_uids)


@dataclass(frozen=True)
class InstanceData:
    """One instance of a scene: where and what (its spec), plus the editor's lock and colour."""

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


@dataclass(frozen=True)
class SceneData:
    """A scene of the project: its own fields, its sampler settings and its instances in slot order."""

    scene_id: int
    name: str
    caption: str = ""
    negative_prompt: str | None = None
    width: int = 512
    height: int = 512
    seed: int = 0
    settings: SceneSettings = field(default_factory=SceneSettings)
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


class SceneState(StrEnum):
    NEVER_RENDERED = "never rendered"
    QUEUED = "queued"
    RENDERING = "rendering"
    RENDERED = "rendered"
    FAILED = "failed"
    CHANGED = "changed since last render"


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
    placement: PlacementReport | None = None  # its placement check; None: not checked
    thresholds: PlacementThresholds = field(default_factory=PlacementThresholds)  # the project's, when read
    best_of_chain: bool = False  # the best of a re-roll chain of two or more renders

    def missed(self) -> tuple[int, ...] | None:
        """The instances (0-based, in the request's order) that did not land; None when not checked."""
        return None if self.placement is None else self.placement.missed(self.thresholds)


def scene_request(scene: SceneData, defaults: ProjectDefaults) -> RenderRequest:
    """The scene frozen into a render request with its effective settings: what the queue renders
    (`projects.scenes.scene_to_request`) and the live preview starts from. RequestValidationError if the
    scene cannot render (an instance without a caption, ...)."""
    effective = scene.settings.effective(defaults)
    return RenderRequest(
        prompt=scene.caption,
        negative_prompt=scene.negative_prompt if scene.negative_prompt is not None else defaults.negative_prompt,
        width=scene.width,
        height=scene.height,
        seed=scene.seed,
        steps=effective.steps,
        guidance=effective.guidance,
        alpha=effective.alpha,
        mis=effective.mis,
        scheduler=effective.scheduler,
        model_id=effective.model_id,
        loras=effective.loras,
        instances=tuple(inst.spec for inst in scene.instances),
    )
