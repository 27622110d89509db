"""The tables of a project file, as SQLAlchemy 2.x typed ORM classes.

The schema itself is owned by the Alembic migrations in `projects/migrations/`; a test checks that
these classes and the migrated schema agree. Timestamps are naive UTC.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Float, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from engine.placement_report import DEFAULT_IOU, DEFAULT_SCORE
from projects.scene_settings import FALLBACK


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, float: Float}


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


class ProjectSettings(Base):
    """One row (id 1): the project's defaults, which scenes override (a new project's are `FALLBACK`)."""

    __tablename__ = "project_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    width: Mapped[int] = mapped_column(default=FALLBACK.width)
    height: Mapped[int] = mapped_column(default=FALLBACK.height)
    steps: Mapped[int] = mapped_column(default=FALLBACK.steps)
    guidance: Mapped[float] = mapped_column(default=FALLBACK.guidance)
    alpha: Mapped[float] = mapped_column(default=FALLBACK.alpha)
    mis: Mapped[float] = mapped_column(default=FALLBACK.mis)
    scheduler: Mapped[str] = mapped_column(String(32), default=FALLBACK.scheduler)
    negative_prompt: Mapped[str] = mapped_column(Text, default=FALLBACK.negative_prompt)
    model_id: Mapped[str] = mapped_column(String(200), default=FALLBACK.model_id)
    # An instance is placed when its checker finds it with at least this overlap and label score
    # (engine.placement_report); renders are judged by the current values, so changing them needs no re-render.
    placement_iou: Mapped[float] = mapped_column(default=DEFAULT_IOU)
    placement_score: Mapped[float] = mapped_column(default=DEFAULT_SCORE)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Scene(Base):
    """A global caption, a canvas, a seed and ordered instances."""

    __tablename__ = "scenes"

    id: Mapped[int] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(index=True)
    name: Mapped[str] = mapped_column(String(200))
    caption: Mapped[str] = mapped_column(Text, default="")
    # None means "use the project's default".
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int]
    height: Mapped[int]
    seed: Mapped[int] = mapped_column(default=0)
    # Per-scene overrides of steps, guidance, alpha, mis, scheduler, model_id and seed_mode, read and
    # written through `projects.scene_settings.SceneSettings`.
    overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    instances: Mapped[list[Instance]] = relationship(
        back_populates="scene", order_by="Instance.position", cascade="all, delete-orphan", passive_deletes=True
    )
    renders: Mapped[list[Render]] = relationship(
        back_populates="scene", order_by="Render.id", cascade="all, delete-orphan", passive_deletes=True
    )


class Instance(Base):
    """One slot of a scene: a caption and a location (`geometry` holds normalised coordinates)."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    caption: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))
    # The InstanceSpec geometry fields (box, point, scribble, polygon, mask) as JSON.
    geometry: Mapped[dict[str, Any]] = mapped_column(default=dict)
    locked: Mapped[bool] = mapped_column(default=False)
    color: Mapped[str] = mapped_column(String(9), default="#4f9dff")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    scene: Mapped[Scene] = relationship(back_populates="instances")


class RenderJob(Base):
    """A queued render: the request is frozen at enqueue time, so editing the scene never changes it."""

    __tablename__ = "render_jobs"
    __table_args__ = (Index("ix_render_jobs_claim", "status", "priority", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scene_id: Mapped[int | None] = mapped_column(ForeignKey("scenes.id", ondelete="SET NULL"), index=True)
    request_json: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING.value)
    priority: Mapped[int] = mapped_column(default=0)
    # Order among jobs of equal priority; enqueue appends, reorder renumbers.
    position: Mapped[int]
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    progress_step: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    # The user cancelled it while it ran: it ends cancelled, whether the render notices or the app dies first.
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # "Until placed, at most N seeds": when the render's check finds a missed instance and fewer than N
    # seeds were tried, the next seed is queued as a new job (0 or 1: no re-roll).
    until_placed: Mapped[int] = mapped_column(default=0)
    # The first job of a re-roll chain (None for that first job, or a job outside any chain).
    reroll_of: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]


class Render(Base):
    """A finished image with everything needed to reproduce it."""

    __tablename__ = "renders"

    id: Mapped[int] = mapped_column(primary_key=True)
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("render_jobs.id", ondelete="SET NULL"))
    png: Mapped[bytes] = mapped_column(LargeBinary)
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary)
    request_json: Mapped[str] = mapped_column(Text)
    seed: Mapped[int]
    # The image's size as rendered; the request's canvas can be larger (the demo model renders at its own scale).
    width: Mapped[int]
    height: Mapped[int]
    # Seconds per phase, e.g. {"load": 1.2, "sample": 8.1, "decode": 0.3}.
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    device: Mapped[str] = mapped_column(String(32), default="")
    dtype: Mapped[str] = mapped_column(String(16), default="")
    # The placement check (engine.placement_report.PlacementReport.to_dict()); None: not checked.
    placement: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The id of the first job of the re-roll chain this render belongs to (None: not part of one); the
    # chain's best render is computed from the placements (projects.placement.best_render).
    reroll_group: Mapped[int | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    scene: Mapped[Scene] = relationship(back_populates="renders")
