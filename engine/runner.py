"""The render loop's body, without Qt: a `RenderRequest` in, an image and its metadata out.

The runner keeps the loaded model between jobs (keyed by model id; loading another frees the previous
one), and turns every failure into a `RenderError` whose message a user can act on:
- the model's files are missing or broken (`ModelFilesError`, naming the file and where to put it);
- out of memory, after trying cheaper settings in turn (`OutOfMemoryRenderError`, saying what was tried):
  smaller UNet batches, then (on an accelerator) diffusers' VAE tiling and model offload, then sequential
  offload; a model loaded with `low_memory` starts with tiling and offload on;
- NaN or inf in the output (`NonFiniteRenderError`; no black image is ever returned).
Cancellation is not a failure: `RenderCancelled` passes through untouched. A failed job leaves the runner
ready for the next one.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import torch

from engine.loras import LoraError, LoraLibrary
from engine.pipeline import InstanceDiffusionPipeline, NonFiniteOutputError, ProgressCallback
from engine.request import RenderRequest
from engine.sampler import RenderCancelled
from engine.weights_io import WeightFileError

__all__ = [
    "LoadedModel",
    "ModelFilesError",
    "NonFiniteRenderError",
    "OutOfMemoryRenderError",
    "RenderCancelled",
    "RenderError",
    "RenderResult",
    "Runner",
]

log = logging.getLogger(__name__)


class RenderError(Exception):
    """A render that failed for a reason the user can read; `kind` is a stable word for the UI."""

    kind: str = "error"


class ModelFilesError(RenderError):
    kind = "model-files"


class OutOfMemoryRenderError(RenderError):
    kind = "out-of-memory"

    def __init__(self, message: str, tried: list[str]) -> None:
        super().__init__(message)
        self.tried = tried


class NonFiniteRenderError(RenderError):
    kind = "nan"


@dataclass
class LoadedModel:
    """A ready pipeline and what identifies its weights."""

    pipeline: InstanceDiffusionPipeline
    hashes: dict[str, str] = field(default_factory=dict)
    # A model with a scale of its own (the demo model: about 64x64) renders a canvas at the size this
    # gives for (width, height); None renders the canvas's own size.
    scale: Callable[[int, int], tuple[int, int]] | None = None
    # The LoRA files this model can apply by name, and those loaded into it (engine.loras).
    loras: LoraLibrary = field(default_factory=LoraLibrary)
    # Offload the models to the CPU between uses and tile the VAE decode from the first render on (on an
    # accelerator; `InstanceDiffusionPipeline.enable_low_memory`), not only after running out of memory.
    low_memory: bool = False

    def render_size(self, width: int, height: int) -> tuple[int, int]:
        """The size this model really renders a `width` x `height` canvas at."""
        return (width, height) if self.scale is None else self.scale(width, height)


ModelProvider = Callable[[str], LoadedModel]


@dataclass(frozen=True)
class RenderResult:
    image: npt.NDArray[np.uint8]  # (H, W, 3): the model's own output, which may be smaller than the canvas
    request: RenderRequest  # as asked (the canvas size is the user's, not the size rendered at)
    timings: dict[str, float]
    model_hashes: dict[str, str]
    device: str
    dtype: str
    notes: tuple[str, ...] = ()  # cheaper settings or fallbacks that were used
    reused_instances: tuple[int, ...] = ()  # instances (0-based) whose chains came from the chain cache

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image as rendered."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@dataclass(frozen=True)
class _Attempt:
    """One rung of the out-of-memory ladder."""

    name: str
    max_batch: int | None = None
    vae_tiling: bool = False
    # Only where the UNet is on an accelerator: "model" moves each model onto it only while it runs
    # (diffusers' enable_model_cpu_offload; without accelerate, the text encoder and VAE stay on the CPU),
    # "sequential" each layer (enable_sequential_cpu_offload: least memory, slowest).
    offload: Literal["", "model", "sequential"] = ""


# Cheaper and cheaper: one chain per UNet call, one row per call, a tiled VAE decode, then the models
# offloaded to the CPU between uses, then layer by layer.
OOM_LADDER: Final = (
    _Attempt("full batch"),
    _Attempt("one chain per UNet call", max_batch=2),
    _Attempt("one row per UNet call", max_batch=1),
    _Attempt("one row per UNet call and a tiled VAE decode", max_batch=1, vae_tiling=True),
    _Attempt(
        "one row per UNet call, a tiled VAE decode, models offloaded to the CPU between uses",
        max_batch=1,
        vae_tiling=True,
        offload="model",
    ),
    _Attempt(
        "one row per UNet call, a tiled VAE decode, sequential CPU offload",
        max_batch=1,
        vae_tiling=True,
        offload="sequential",
    ),
)


class Runner:
    def __init__(self, provider: ModelProvider) -> None:
        self._provider = provider
        self._model_id: str | None = None
        self._model: LoadedModel | None = None
        self._low_memory_notes: list[str] = []

    @property
    def loaded_model_id(self) -> str | None:
        return self._model_id

    def model(self, model_id: str) -> LoadedModel:
        """The loaded model for `model_id`, loading it (and freeing any other) on first use."""
        if self._model_id == model_id and self._model is not None:
            return self._model
        self.unload()
        try:
            self._model = self._provider(model_id)
        except WeightFileError as exc:
            raise ModelFilesError(str(exc)) from exc
        # Chains cached for one set of weights never match another's (the cache also dies with the pipeline).
        self._model.pipeline.identity = json.dumps([model_id, self._model.hashes], sort_keys=True)
        self._low_memory_notes = self._model.pipeline.enable_low_memory() if self._model.low_memory else []
        self._model_id = model_id
        return self._model

    def unload(self) -> None:
        loaded = self._model is not None
        self._model, self._model_id = None, None
        self._low_memory_notes = []
        if loaded:  # a full garbage collection costs a fraction of a second: only when there is a model to free
            _free_memory()

    def render(
        self,
        request: RenderRequest,
        *,
        on_progress: ProgressCallback | None = None,
        preview_every: int = 0,
        should_cancel: Callable[[], bool] | None = None,
        on_loading: Callable[[], None] | None = None,
    ) -> RenderResult:
        """Render one request; raises a `RenderError` subclass or `RenderCancelled`. `on_loading` is called
        before a model that is not loaded yet loads (seconds to minutes, before the first step)."""
        load_start = time.perf_counter()
        if on_loading is not None and self._model_id != request.model_id:
            on_loading()
        model = self.model(request.model_id)
        lora_hashes = _apply_loras(model, request)
        load_time = time.perf_counter() - load_start
        pipeline = model.pipeline
        rendered = _at_model_scale(request, model)
        tried: list[str] = []
        on_accelerator = pipeline.execution_device.type != "cpu"
        for attempt in OOM_LADDER:
            if attempt.offload and not on_accelerator:
                continue  # already on the CPU: nothing to move
            if attempt.offload == "model" and self._low_memory_notes:
                continue  # low memory: already offloaded
            tried.append(attempt.name)
            try:
                with _vae_tiling(pipeline, attempt.vae_tiling), _offloaded(pipeline, attempt.offload):
                    output = pipeline.render(
                        rendered,
                        callback=on_progress,
                        preview_every=preview_every,
                        should_cancel=should_cancel,
                        max_batch=attempt.max_batch,
                        reuse_chains=True,
                    )
            except RenderCancelled:
                raise
            except NonFiniteOutputError as exc:
                raise NonFiniteRenderError(f"the render produced invalid values (NaN): {exc}") from exc
            except (torch.OutOfMemoryError, MemoryError) as exc:
                log.warning("out of memory with %s: %s", attempt.name, exc)
                _free_memory()
                continue
            notes = [f"low memory: {note}" for note in self._low_memory_notes] + list(output.notes)
            if rendered is not request:
                notes.insert(
                    0,
                    f"rendered at {rendered.width}x{rendered.height}, the model's own scale, for a "
                    f"{request.width}x{request.height} canvas (stored as rendered, not upscaled)",
                )
            if len(tried) > 1:
                notes.insert(0, f"out of memory at first; rendered with {attempt.name}")
            return RenderResult(
                image=output.image,
                request=request,
                timings={"load": load_time, **output.timings},
                model_hashes={**model.hashes, **lora_hashes},
                device=str(pipeline.execution_device),
                dtype=str(pipeline.dtype).removeprefix("torch."),
                notes=tuple(notes),
                reused_instances=output.reused,
            )
        raise OutOfMemoryRenderError(
            f"out of memory even after trying: {', '.join(tried)}; render a smaller canvas, fewer instances, "
            "or a lower mis (fewer parallel chains)",
            tried,
        )


def _apply_loras(model: LoadedModel, request: RenderRequest) -> dict[str, str]:
    """Make the request's LoRAs (none: the base alone) the active ones; their file hashes, for the metadata."""
    try:
        return model.loras.activate(model.pipeline, request.loras)
    except LoraError as exc:
        raise ModelFilesError(str(exc)) from exc


def _at_model_scale(request: RenderRequest, model: LoadedModel) -> RenderRequest:
    """The request at the size the model really renders it (the request itself when that is its canvas)."""
    width, height = model.render_size(request.width, request.height)
    if (width, height) == (request.width, request.height):
        return request
    return dataclasses.replace(request, width=width, height=height)  # geometry is normalised: it carries over


@contextmanager
def _vae_tiling(pipeline: InstanceDiffusionPipeline, enabled: bool) -> Iterator[None]:
    """Turn the VAE's tiled decode on for one attempt, and back to how it was afterwards."""
    before = bool(getattr(pipeline.vae, "use_tiling", False))
    if enabled:
        pipeline.enable_vae_tiling()
    try:
        yield
    finally:
        if enabled and not before:
            pipeline.disable_vae_tiling()


@contextmanager
def _offloaded(pipeline: InstanceDiffusionPipeline, how: str) -> Iterator[None]:
    """diffusers' model or sequential CPU offload for one attempt, and the models back where they were
    afterwards. Without accelerate (which diffusers' offload needs) the text encoder and VAE move to the
    CPU (fp32) by hand, leaving the accelerator to the UNet."""
    if not how:
        yield
        return
    modules: tuple[torch.nn.Module, ...] = (pipeline.text_encoder, pipeline.vae, pipeline.unet)
    placed = [(module, next(module.parameters()).device, next(module.parameters()).dtype) for module in modules]
    device = pipeline.execution_device
    hooked = bool(getattr(pipeline, "_all_hooks", None))  # low memory: model offload already on
    try:
        if how == "sequential":
            pipeline.enable_sequential_cpu_offload(device=device)
        else:
            pipeline.enable_model_cpu_offload(device=device)
    except ImportError:
        log.info("accelerate is not installed: moving the text encoder and VAE to the CPU by hand")
        for module in (pipeline.text_encoder, pipeline.vae):
            torch.nn.Module.to(module, "cpu", torch.float32)
    _free_memory()
    try:
        yield
    finally:
        pipeline.remove_all_hooks()  # type: ignore[no-untyped-call]
        for placed_module, where, dtype in placed:
            torch.nn.Module.to(placed_module, where, dtype)
        if hooked:
            pipeline.enable_model_cpu_offload(device=device)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
