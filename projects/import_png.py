"""Our exported PNGs back into scenes: the render request in the `instance-studio:request` text chunk.

Only the metadata is read; pixel data is never decoded. The image size in the IHDR header is checked
against a pixel limit before PIL sees the file (a decompression bomb is refused from its first 24
bytes), the file against a size limit before it is read. PIL then reads the text chunks before the
image data, which is where Instance Studio writes them (text placed after the image data by other
tools is not looked for, since finding it would mean reading past the pixels).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Final

from PIL import Image

from engine.request import MAX_CANVAS, RenderRequest, RequestValidationError
from projects.errors import LayoutFormatError
from projects.safe_input import file_stem, sanitise_name
from projects.scene_settings import SceneSettings
from projects.scenes import SceneLayout

REQUEST_KEY: Final = "instance-studio:request"
MAX_PNG_BYTES: Final = 64 * 1024 * 1024
MAX_PNG_PIXELS: Final = 4 * MAX_CANVAS * MAX_CANVAS  # our renders are at most MAX_CANVAS a side
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


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
        name = (
            "imported image"
            if isinstance(source, bytes)
            else sanitise_name(file_stem(Path(source).name), "imported image")
        )
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


def request_from_png(
    source: str | Path | bytes, *, max_bytes: int = MAX_PNG_BYTES, max_pixels: int = MAX_PNG_PIXELS
) -> RenderRequest:
    """The validated request stored in one of our PNGs; LayoutFormatError for anything else."""
    label = "image data" if isinstance(source, bytes) else str(source)
    raw = source if isinstance(source, bytes) else _read_limited(Path(source), max_bytes)
    if len(raw) > max_bytes:
        raise LayoutFormatError(label, f"file is {len(raw):,} bytes; images are at most {max_bytes:,}")
    width, height = _png_size(raw, label)
    if width * height > max_pixels:
        raise LayoutFormatError(
            label, f"claims {width}x{height} pixels (more than {max_pixels:,}); refused without decoding it"
        )
    try:
        with Image.open(io.BytesIO(raw), formats=["PNG"]) as image:
            # `info` holds the text chunks met before the image data; `image.text` would decode the pixels.
            text = image.info.get(REQUEST_KEY)
    except (Image.DecompressionBombError, OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error) as exc:
        raise LayoutFormatError(label, f"the PNG is damaged ({exc})") from exc
    if text is None:
        raise LayoutFormatError(label, f"not an Instance Studio image (it has no {REQUEST_KEY!r} metadata)")
    if not isinstance(text, str):
        raise LayoutFormatError(label, f"its {REQUEST_KEY!r} metadata is not text")
    try:
        return RenderRequest.from_json(text)
    except RequestValidationError as exc:
        raise LayoutFormatError(label, f"its stored request is invalid: {exc}") from exc


def _read_limited(path: Path, max_bytes: int) -> bytes:
    source = str(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LayoutFormatError(source, f"file is {size:,} bytes; images are at most {max_bytes:,}")
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)
    except OSError as exc:
        raise LayoutFormatError(source, f"cannot be read: {exc.strerror or exc}") from exc


def _png_size(raw: bytes, label: str) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG standard puts first."""
    if not raw.startswith(PNG_SIGNATURE):
        raise LayoutFormatError(label, "not a PNG image")
    if len(raw) < 33 or raw[12:16] != b"IHDR":
        raise LayoutFormatError(label, "the PNG is damaged (no image header)")
    width, height = struct.unpack(">II", raw[16:24])
    if width == 0 or height == 0:
        raise LayoutFormatError(label, f"the PNG claims an empty {width}x{height} image")
    return int(width), int(height)
