import dataclasses
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest, Scheduler
from projects.database import Project
from projects.errors import LayoutFormatError
from projects.import_png import scene_from_png
from projects.png_metadata import MAX_PNG_BYTES, REQUEST_KEY, VERSION_KEY, request_from_png
from projects.scenes import add_scene, scene_to_request

REQUEST = RenderRequest(
    prompt="a corgi in a kitchen, morning light",
    negative_prompt="blurry, низкое качество",  # not Latin-1: PIL stores it in an iTXt chunk
    width=768,
    height=512,
    seed=123456789,
    steps=30,
    guidance=6.5,
    alpha=0.8,
    mis=0.2,
    scheduler=Scheduler.DDIM,
    model_id="sd15-instdiff",
    instances=(
        InstanceSpec("a corgi", InstanceKind.BOX, box=(0.1, 0.2, 0.5, 0.9)),
        InstanceSpec("a kettle", InstanceKind.POINT, point=(0.75, 0.3)),
        InstanceSpec("a cable", InstanceKind.SCRIBBLE, scribble=((0.6, 0.9), (0.7, 0.8), (0.9, 0.85))),
        InstanceSpec("a window", InstanceKind.MASK, polygon=((0.6, 0.05), (0.95, 0.05), (0.95, 0.4))),
        InstanceSpec("a rug", InstanceKind.MASK, mask=MaskRLE.from_bitmap(np.eye(8, dtype=np.uint8))),
    ),
)


def png_bytes(text: dict[str, str] | None = None, size: tuple[int, int] = (16, 8)) -> bytes:
    """A PNG as our exporter writes it: the text chunks go before the image data."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", size, (200, 100, 50)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def with_ihdr_size(data: bytes, width: int, height: int) -> bytes:
    """The same PNG with its header claiming another size (and a correct CRC): a decompression bomb."""
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes of fields
    ihdr[4:12] = struct.pack(">II", width, height)
    crc = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return data[:12] + bytes(ihdr) + crc + data[33:]


@pytest.fixture
def no_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", refuse)


@pytest.mark.usefixtures("no_pixel_decoding")
def test_png_round_trips_to_the_same_request(tmp_path: Path) -> None:
    data = png_bytes({REQUEST_KEY: REQUEST.to_json(), VERSION_KEY: "0.1.0"})
    assert request_from_png(data) == REQUEST
    path = tmp_path / "render 0001.png"
    path.write_bytes(data)
    layout = scene_from_png(path)
    assert layout.name == "render 0001"
    assert scene_from_png(data).name == "imported image"
    assert scene_from_png(data, name="kitchen").name == "kitchen"
    assert (layout.caption, layout.negative_prompt, layout.width, layout.height, layout.seed) == (
        REQUEST.prompt,
        REQUEST.negative_prompt,
        768,
        512,
        123456789,
    )
    assert layout.instances == REQUEST.instances
    assert layout.overrides == {"steps": 30, "guidance": 6.5, "alpha": 0.8, "mis": 0.2, "scheduler": "ddim"}


def test_the_recreated_scene_renders_the_same_request(project: Project) -> None:
    layout = scene_from_png(png_bytes({REQUEST_KEY: REQUEST.to_json()}))
    with project.write() as session:
        scene = add_scene(session, layout)
        request = scene_to_request(session, scene)
    assert request == dataclasses.replace(REQUEST, model_id=request.model_id)  # the project picks the model


def test_a_png_without_our_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "holiday.png"
    path.write_bytes(png_bytes({"Software": "GIMP"}))
    with pytest.raises(LayoutFormatError, match=f"^{path}: not an Instance Studio image"):
        scene_from_png(path)


@pytest.mark.usefixtures("no_pixel_decoding")
def test_a_decompression_bomb_is_refused_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = with_ihdr_size(png_bytes({REQUEST_KEY: REQUEST.to_json()}), 100_000, 100_000)
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with Image.open(io.BytesIO(with_ihdr_size(png_bytes(), 300, 200))) as check:
        assert check.size == (300, 200)  # the patch makes a header PIL accepts

    def no_pil(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("PIL was given the file")

    monkeypatch.setattr(Image, "open", no_pil)
    with pytest.raises(LayoutFormatError) as info:
        scene_from_png(path)
    assert str(info.value).startswith(f"{path}: claims 100000x100000 pixels")
    assert "refused without decoding" in str(info.value)


def test_limits_can_be_lowered() -> None:
    data = png_bytes({REQUEST_KEY: REQUEST.to_json()})
    with pytest.raises(LayoutFormatError, match="claims 16x8 pixels"):
        scene_from_png(data, max_pixels=100)
    with pytest.raises(LayoutFormatError, match=f"file is {len(data):,} bytes; images are at most 100"):
        scene_from_png(data, max_bytes=100)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as handle:
        handle.truncate(MAX_PNG_BYTES + 1)  # sparse
    with pytest.raises(LayoutFormatError, match=f"^{path}: file is [\\d,]+ bytes; images are at most"):
        scene_from_png(path)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GIF89a not a png at all", "not a PNG image"),
        (png_bytes()[:20], r"the PNG is damaged \(no image header\)"),
        (with_ihdr_size(png_bytes(), 0, 5), "the PNG claims an empty 0x5 image"),
        (png_bytes({REQUEST_KEY: "{not json"}), "its stored request is invalid: request is not valid JSON"),
        (png_bytes({REQUEST_KEY: '{"prompt": 5}'}), "its stored request is invalid"),
        (png_bytes({REQUEST_KEY: "[" * 100_000}), "its stored request is invalid"),
    ],
)
def test_broken_images_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(LayoutFormatError, match=f"^image data: {problem}"):
        scene_from_png(data)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LayoutFormatError, match="cannot be read"):
        scene_from_png(tmp_path / "nope.png")


def test_the_loras_a_png_was_rendered_with_come_back_with_its_scene(project: Project) -> None:
    from engine.request import LoraWeight

    rendered = dataclasses.replace(REQUEST, loras=(LoraWeight("ink", 0.8), LoraWeight("film grain", -0.25)))
    layout = scene_from_png(png_bytes({REQUEST_KEY: rendered.to_json()}))
    with project.write() as session:
        request = scene_to_request(session, add_scene(session, layout))
    assert request.loras == rendered.loras
