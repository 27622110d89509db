"""The files made for each exported image: the PNG with its metadata, a layout sidecar, a preview.

The PNG is the stored one, byte for byte, when it already carries the three text chunks of
projects.png_metadata; otherwise it is re-saved (pixels unchanged) with the missing chunks added from
the render's row.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any, Final

from PIL import Image, ImageDraw, ImageFont
from pycocotools import mask as coco_mask

from engine.request import InstanceSpec
from projects.export_errors import ExportError
from projects.export_labels import Label, instance_label
from projects.export_source import RenderData
from projects.png_metadata import metadata_chunks, png_with_text
from projects.scene_data import INSTANCE_PALETTE

SIDECAR_FORMAT: Final = "instance-studio-layout"
SIDECAR_VERSION: Final = 1

# Annotated previews of small renders (a 64 x 64 demo render) are scaled up by a whole factor, pixels kept
# sharp, until the long side reaches this, so that lines and captions cover little of the picture.
PREVIEW_MIN_SIDE: Final = 512
# The captions' height in pixels is the preview's long side over this (13 px at 512), at least 11 px.
PREVIEW_FONT_DIVISOR: Final = 40


@dataclass(frozen=True)
class PreparedImage:
    png: bytes
    width: int
    height: int
    reembedded: bool  # the stored PNG lacked a chunk, so it was re-saved


def prepare_png(render: RenderData) -> PreparedImage:
    """The stored PNG, guaranteed to carry the request, app version and model hashes as text chunks."""
    try:
        with Image.open(io.BytesIO(render.png)) as image:
            if image.format != "PNG":
                raise ExportError(f"render {render.ref.render_id}: the stored image is {image.format}, not a PNG")
            text: dict[str, str] = dict(getattr(image, "text", {}))  # reading .text loads the whole file
            wanted = metadata_chunks(render.request_json, render.model_hashes)
            if all(key in text for key in wanted):
                return PreparedImage(render.png, image.width, image.height, reembedded=False)
            png = png_with_text(image, {**wanted, **text})  # the image's own chunks win
            return PreparedImage(png, image.width, image.height, reembedded=True)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ExportError(f"render {render.ref.render_id}: the stored image is not a readable PNG ({exc})") from exc


def sidecar_json(render: RenderData, image_name: str) -> bytes:
    """The layout the image was rendered from, as JSON (normalised geometry, as in the request)."""
    request = render.request
    data: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "version": SIDECAR_VERSION,
        "image": image_name,
        "scene": {"id": render.ref.scene_id, "name": render.ref.scene_name},
        "render_id": render.ref.render_id,
        "caption": request.prompt,
        "negative_prompt": request.negative_prompt,
        "width": request.width,
        "height": request.height,
        "seed": request.seed,
        "model_id": request.model_id,
        "model_hashes": render.model_hashes,
        "created_at": render.ref.created_at.isoformat(timespec="seconds") + "Z",
        "instances": [spec.to_dict() for spec in request.instances],
    }
    return json_bytes(data, indent=2) + b"\n"


def json_bytes(data: Any, indent: int | None = None) -> bytes:
    """UTF-8 JSON, readable where it can be: text that UTF-8 cannot hold (lone surrogates) is escaped."""
    try:
        return json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=indent, ensure_ascii=True, allow_nan=False).encode("ascii")


def annotated_png(png: bytes, instances: tuple[InstanceSpec, ...]) -> bytes:
    """A preview: the image with each instance's region, box, scribble or point and caption drawn on it.

    A small image is first scaled up (`preview_scale`), so the drawing stays readable and leaves the
    picture visible; the captions' size follows the preview's size."""
    with Image.open(io.BytesIO(png)) as opened:
        base = opened.convert("RGBA")
    scale = preview_scale(base.width, base.height)
    if scale > 1:
        base = base.resize((base.width * scale, base.height * scale), Image.Resampling.NEAREST)
    width, height = base.size
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=max(11, round(max(width, height) / PREVIEW_FONT_DIVISOR)))
    line = max(2, round(min(width, height) / 256))
    for slot, spec in enumerate(instances):
        color = _rgb(INSTANCE_PALETTE[slot % len(INSTANCE_PALETTE)])
        label = instance_label(spec, width, height)
        if label is not None and label.rle is not None:
            rle = {"size": label.rle["size"], "counts": label.rle["counts"].encode("ascii")}
            region = Image.fromarray(coco_mask.decode(rle) * 90, mode="L")
            overlay.paste(Image.new("RGBA", base.size, (*color, 255)), (0, 0), region)
        if spec.polygon is not None:
            draw.polygon([(x * width, y * height) for x, y in spec.polygon], outline=(*color, 255), width=line)
        if spec.scribble is not None:
            draw.line([(x * width, y * height) for x, y in spec.scribble], fill=(*color, 255), width=line + 1)
        if spec.box is not None:
            x0, y0, x1, y1 = spec.box
            draw.rectangle((x0 * width, y0 * height, x1 * width, y1 * height), outline=(*color, 255), width=line)
        if spec.point is not None:
            px, py, r = spec.point[0] * width, spec.point[1] * height, 2 * line + 2
            draw.ellipse((px - r, py - r, px + r, py + r), fill=(*color, 255), outline=(255, 255, 255, 255))
        anchor = _caption_anchor(spec, label, width, height)
        if anchor is not None:
            text = f"{slot + 1}: {spec.caption}"[:60]
            left, top, right, bottom = draw.textbbox(anchor, text, font=font)
            draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=(0, 0, 0, 160))
            draw.text(anchor, text, fill=(*color, 255), font=font)
    out = io.BytesIO()
    Image.alpha_composite(base, overlay).convert("RGB").save(out, format="PNG")
    return out.getvalue()


def preview_scale(width: int, height: int) -> int:
    """The whole factor an annotated preview of a `width` x `height` image is scaled up by (1: as it is)."""
    return max(1, math.ceil(PREVIEW_MIN_SIDE / max(width, height, 1)))


def _caption_anchor(spec: InstanceSpec, label: Label | None, width: int, height: int) -> tuple[float, float] | None:
    if label is not None:
        return (label.bbox[0] + 3, label.bbox[1] + 2)
    if spec.point is not None:
        return (spec.point[0] * width + 8, spec.point[1] * height - 6)
    return None


def _rgb(hex_color: str) -> tuple[int, int, int]:
    value = hex_color.lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))
