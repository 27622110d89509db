"""Live preview: the scene re-rendered at preview quality while the user edits it, newest geometry first.

The GUI freezes the scene with `projects.scene_data.scene_request` (as the queue does) and hands each
edit's request to `PreviewSlot.submit`; the render worker (`rendering.worker`) takes the newest from the
slot whenever the queue has nothing to do and renders it with the same runner (and so the same loaded
model, encoded texts and instance-chain cache) as the queue's jobs. A preview is never queued behind
another: a newer submit replaces a waiting one and cancels a running one at the engine's next check
(within one UNet call), and a job queued meanwhile cancels it too, so queue jobs always go
first. A preview never touches the project file.

No Qt and no torch here: `render_preview` gets the runner from the worker's thread.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from engine.demo.limits import MODEL_ID as DEMO_MODEL_ID
from engine.request import RenderRequest, Scheduler

if TYPE_CHECKING:  # torch: only on the worker's thread
    from engine.runner import Runner


@dataclass(frozen=True)
class PreviewQuality:
    """How a preview renders: fewer steps with a fast multistep scheduler."""

    steps: int
    scheduler: Scheduler = Scheduler.DPM_SOLVER_PP


# The demo model renders about 64x64: a preview can afford most of its schedule. SD1.5 on a CPU cannot.
DEMO_PREVIEW: Final = PreviewQuality(steps=12)
DEFAULT_PREVIEW: Final = PreviewQuality(steps=8)
MAX_PREVIEW_STEPS: Final = 50


def default_quality(model_id: str) -> PreviewQuality:
    """The preview quality a model starts with (the user may change the steps)."""
    return DEMO_PREVIEW if model_id == DEMO_MODEL_ID else DEFAULT_PREVIEW


def at_preview_quality(request: RenderRequest, quality: PreviewQuality) -> RenderRequest:
    """The request with the preview's steps and scheduler; everything that places things stays."""
    return dataclasses.replace(request, steps=min(quality.steps, request.steps), scheduler=quality.scheduler)


@dataclass(frozen=True)
class PreviewResult:
    """A finished preview (`image`) or why there is none (`error`), for the request submitted as `token`."""

    token: int
    request: RenderRequest
    image: npt.NDArray[np.uint8] | None = None
    seconds: float = 0.0
    reused_instances: tuple[int, ...] = ()
    error: str | None = None


class PreviewSlot:
    """The newest preview request, shared by the submitting thread and the worker's (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: tuple[int, RenderRequest] | None = None
        self._newest = 0

    def submit(self, token: int, request: RenderRequest) -> None:
        """Replace whatever waits; a preview rendering for an older token sees `superseded` turn true."""
        with self._lock:
            self._pending = (token, request)
            self._newest = token

    def clear(self) -> None:
        """Drop the waiting request and cancel a running one (Live was switched off, the scene changed)."""
        with self._lock:
            self._pending = None
            self._newest += 1

    def take(self) -> tuple[int, RenderRequest] | None:
        with self._lock:
            pending, self._pending = self._pending, None
            return pending

    def put_back(self, token: int, request: RenderRequest) -> None:
        """Return a preview that was interrupted by a queue job, unless a newer one came meanwhile."""
        with self._lock:
            if self._pending is None and token == self._newest:
                self._pending = (token, request)

    def superseded(self, token: int) -> bool:
        with self._lock:
            return token != self._newest

    @property
    def waiting(self) -> bool:
        with self._lock:
            return self._pending is not None


def render_preview(
    runner: Runner,
    slot: PreviewSlot,
    token: int,
    request: RenderRequest,
    *,
    interrupted: Callable[[], bool],
) -> PreviewResult | None:
    """Render one preview; None when it was cancelled (superseded, or `interrupted` by a queue job or a
    stop; then the slot decides whether it comes back)."""
    from engine.runner import RenderCancelled, RenderError  # torch: on the worker's thread only

    start = time.perf_counter()
    try:
        result = runner.render(request, should_cancel=lambda: slot.superseded(token) or interrupted())
    except RenderCancelled:
        if not slot.superseded(token):
            slot.put_back(token, request)
        return None
    except (RenderError, ValueError) as exc:  # ValueError: the model cannot take this canvas
        return PreviewResult(token, request, error=str(exc))
    return PreviewResult(
        token,
        request,
        image=result.image,
        seconds=time.perf_counter() - start,
        reused_instances=result.reused_instances,
    )
