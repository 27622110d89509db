"""Our exported PNGs back into scenes: the render request in the `instance-studio:request` text chunk.

Only the metadata is read (see projects.png_metadata, which also guards against oversized files and
decompression bombs); pixel data is never decoded.
"""

from __future__ import annotations

from pathlib import Path

from engine.request import instance_label
from projects.errors import LayoutFormatError
from projects.import_geometry import GeometryError, check_instance
from projects.png_metadata import MAX_PNG_BYTES, MAX_PNG_PIXELS, request_from_png
from projects.safe_input import scene_name_from, shown
from projects.scene_settings import SceneSettings
from projects.scenes import SceneLayout


def scene_from_png(
    source: str | Path | bytes,
    *,
    name: str | None = None,
    max_bytes: int = MAX_PNG_BYTES,
    max_pixels: int = MAX_PNG_PIXELS,
) -> SceneLayout:
    """The scene an Instance Studio PNG was rendered from: caption, negative prompt, size, seed,
    instances, and the sampler settings (steps, guidance, alpha, mis, scheduler) and LoRAs as overrides.

    Named `name`, else after the file (`"imported image"` for bytes). Raises LayoutFormatError for
    files that are too large, not PNG, claim too many pixels or carry no (valid) request. The
    request's geometry gets the same full check as every import (a mask must decode), and a failure
    refuses the file: a render is repeated whole or not at all.
    """
    request = request_from_png(source, max_bytes=max_bytes, max_pixels=max_pixels)
    for index, spec in enumerate(request.instances):
        try:
            check_instance(spec, instance_label(index, spec.caption))
        except GeometryError as exc:
            label = "image data" if isinstance(source, bytes) else shown(str(source))
            raise LayoutFormatError(label, f"its stored request is invalid: {exc}") from exc
    if name is None:
        name = "imported image" if isinstance(source, bytes) else scene_name_from(source, "imported image")
    return SceneLayout(
        name=name,
        caption=request.prompt,
        width=request.width,
        height=request.height,
        instances=request.instances,
        seed=request.seed,
        negative_prompt=request.negative_prompt,
        overrides=SceneSettings(
            steps=request.steps,
            guidance=request.guidance,
            alpha=request.alpha,
            mis=request.mis,
            scheduler=request.scheduler,
            loras=request.loras,  # part of the look: a LoRA not configured here is named when it renders
        ).to_overrides(),
    )
