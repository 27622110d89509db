"""Our PNG text chunks: what the renderer and the exporter write is what an import reads back."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from projects.errors import LayoutFormatError
from projects.png_metadata import (
    HASHES_KEY,
    RENDERED_SIZE_KEY,
    REQUEST_KEY,
    VERSION_KEY,
    app_version,
    metadata_chunks,
    png_with_text,
    request_from_png,
)
from tests.projects.test_import_png import REQUEST


def test_written_chunks_read_back_before_the_pixels() -> None:
    hashes = {"unet": "ff00", "adapter": "ab12"}
    chunks = metadata_chunks(REQUEST.to_json(), hashes)
    assert set(chunks) == {REQUEST_KEY, VERSION_KEY, HASHES_KEY}
    assert chunks[VERSION_KEY] == app_version() and chunks[HASHES_KEY] == '{"adapter": "ab12", "unet": "ff00"}'
    png = png_with_text(Image.new("RGB", (16, 8), "white"), chunks)
    assert request_from_png(png) == REQUEST  # the negative prompt is not Latin-1: an iTXt chunk
    with Image.open(io.BytesIO(png)) as image:
        assert image.info[VERSION_KEY] == app_version()  # met before the image data: no decoding needed
        assert json.loads(image.info[HASHES_KEY]) == hashes
        assert image.size == (16, 8)


def test_the_size_rendered_at_is_a_chunk_of_its_own_and_the_request_keeps_the_canvas() -> None:
    chunks = metadata_chunks(REQUEST.to_json(), {}, rendered_size=(64, 48))
    assert json.loads(chunks[RENDERED_SIZE_KEY]) == {"width": 64, "height": 48}
    png = png_with_text(Image.new("RGB", (64, 48), "white"), chunks)
    assert request_from_png(png) == REQUEST
    with Image.open(io.BytesIO(png)) as image:
        assert json.loads(image.info[RENDERED_SIZE_KEY]) == {"width": 64, "height": 48}


def test_anything_but_our_png_is_refused_in_words() -> None:
    with pytest.raises(LayoutFormatError, match="not a PNG image"):
        request_from_png(b"not a png")
    plain = png_with_text(Image.new("RGB", (4, 4)), {})
    with pytest.raises(LayoutFormatError, match="not an Instance Studio image"):
        request_from_png(plain)
