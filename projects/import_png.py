"""Our exported PNGs back into scenes: the render request in the `instance-studio:request` text chunk.

Only the metadata is read (see projects.png_metadata, which also guards against oversized files and
decompression bombs); pixel data is never decoded.
"""

from __future__ import annotations

from pathlib import Path

from projects.png_metadata import MAX_PNG_BYTES, MAX_PNG_PIXELS, request_from_png
from projects.safe_input import scene_name_from
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
    instances, and the sampler settings (steps, guidance, alpha, mis, scheduler) as overrides.

    Named `name`, else after the file (`"imported image"` for bytes). Raises LayoutFormatError for
    files that are too large, not PNG, claim too many pixels or carry no (valid) request.
    """
    request = request_from_png(source, max_bytes=max_bytes, max_pixels=max_pixels)
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
        ).to_overrides(),
    )
