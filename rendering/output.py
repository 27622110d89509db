"""What is stored for a finished render: the PNG with its metadata (projects.png_metadata), a thumbnail,
and the timings, hashes, device and dtype. Imports no torch: the engine's result is only a type here."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image

from projects.png_metadata import metadata_chunks, png_with_text
from projects.queue import RenderOutput

if TYPE_CHECKING:
    from engine.runner import RenderResult

THUMBNAIL_SIDE = 160


def render_output(result: RenderResult) -> RenderOutput:
    """The PNG (with the full request and model hashes in text chunks), a thumbnail and the metadata."""
    image = Image.fromarray(result.image)
    png = png_with_text(image, metadata_chunks(result.request.to_json(), result.model_hashes, result.size))
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    small = io.BytesIO()
    thumb.save(small, format="PNG")
    timings: dict[str, object] = {key: round(value, 4) for key, value in result.timings.items()}
    if result.notes:
        timings["notes"] = list(result.notes)  # e.g. the cheaper settings an out-of-memory retry used
    # Instances (0-based) whose chains came from the engine's chain cache: a re-render after an edit.
    timings["reused_instances"] = list(result.reused_instances)
    return RenderOutput(
        png=png,
        thumbnail=small.getvalue(),
        timings=timings,
        model_hashes=dict(result.model_hashes),
        device=result.device,
        dtype=result.dtype,
        size=result.size,  # the model's own output: a demo render of a 512x512 canvas is 64x64
    )
