"""The metadata Instance Studio keeps in its PNGs: the text chunk names, writing them, reading them back.

Every PNG we store or export carries three text chunks, written before the image data: the full render
request as JSON (enough to render the image again, bit for bit), the app version, and the hashes of the
model files. The renderer writes them when it stores a render, with a fourth: the size the model really
rendered at (the demo model renders any canvas at its own scale, about 64x64, so the image can be smaller
than the request's canvas); the exporter re-adds any of the three that a stored image lacks; importing an
image reads the request back.

Reading reads only the metadata; pixel data is never decoded. The image size in the IHDR header is
checked against a pixel limit before PIL sees the file (a decompression bomb is refused from its first
24 bytes), the file against a size limit before it is read. PIL then reads the text chunks before the
image data, which is where we write them (text placed after the image data by other tools is not looked
for, since finding it would mean reading past the pixels).

Torch-free and Qt-free: it sits in projects/ because both the exporter (here) and the renderer (the
`rendering` package, above) use it, and the engine writes no PNGs.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from PIL import Image, PngImagePlugin

from engine.request import MAX_CANVAS, RenderRequest, RequestValidationError
from projects.errors import LayoutFormatError
from projects.safe_input import read_bytes, shown

REQUEST_KEY: Final = "instance-studio:request"
VERSION_KEY: Final = "instance-studio:version"
HASHES_KEY: Final = "instance-studio:model-hashes"
RENDERED_SIZE_KEY: Final = "instance-studio:rendered-size"  # {"width": 64, "height": 64}

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
MAX_PNG_BYTES: Final = 64 * 1024 * 1024
MAX_PNG_PIXELS: Final = 4 * MAX_CANVAS * MAX_CANVAS  # our renders are at most MAX_CANVAS a side


def app_version() -> str:
    try:
        return metadata.version("instance-studio")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- writing ---------------------------------------------------------------------------------------


def metadata_chunks(
    request_json: str, model_hashes: Mapping[str, Any], rendered_size: tuple[int, int] | None = None
) -> dict[str, str]:
    """The text chunks of one of our PNGs: the request (as stored), this app's version, the hashes, and
    (from the renderer) the (width, height) the model rendered at, which the request's canvas may not be."""
    chunks = {
        REQUEST_KEY: request_json,
        VERSION_KEY: app_version(),
        HASHES_KEY: json.dumps(dict(model_hashes), sort_keys=True),
    }
    if rendered_size is not None:
        chunks[RENDERED_SIZE_KEY] = json.dumps({"width": rendered_size[0], "height": rendered_size[1]})
    return chunks


def png_with_text(image: Image.Image, chunks: Mapping[str, str]) -> bytes:
    """`image` encoded as PNG with `chunks` as text chunks (iTXt, UTF-8, where the text is not Latin-1)."""
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


# --- reading ---------------------------------------------------------------------------------------


def request_from_png(
    source: str | Path | bytes, *, max_bytes: int = MAX_PNG_BYTES, max_pixels: int = MAX_PNG_PIXELS
) -> RenderRequest:
    """The validated request stored in one of our PNGs; LayoutFormatError for anything else."""
    label = "image data" if isinstance(source, bytes) else shown(str(source))
    raw = source if isinstance(source, bytes) else read_bytes(source, max_bytes, kind="images")
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
        raise LayoutFormatError(label, f"its stored request is invalid: {_first_problems(exc)}") from exc


def _first_problems(error: RequestValidationError, count: int = 3) -> str:
    """The first `count` problems, and how many more: one line a user reads, not one per instance."""
    messages = [problem.message for problem in error.problems] or [str(error)]
    more = len(messages) - count
    return "; ".join(messages[:count]) + (f"; and {more} more" if more > 0 else "")


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
