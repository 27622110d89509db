"""Reading whatever the user drops or picks: an official scene JSON, a COCO or labelme file, or one of our
PNGs, told apart by their content (not by their names). Reads only; the caller writes the scenes."""

from __future__ import annotations

from pathlib import Path

from projects.errors import LayoutFormatError
from projects.import_coco import parse_coco
from projects.import_labelme import parse_labelme
from projects.import_png import scene_from_png
from projects.official_json import ImportedLayout, parse_official_layout
from projects.png_metadata import PNG_SIGNATURE
from projects.safe_input import read_head, read_json, scene_name_from, shown


def read_any(path: Path) -> list[ImportedLayout]:
    """The scenes in `path`; raises LayoutFormatError naming the file when it is none of the known kinds."""
    source = shown(str(path))
    # Every read goes through safe_input's bounded reader: regular files only, never a FIFO or a device.
    if read_head(path, len(PNG_SIGNATURE)) == PNG_SIGNATURE:
        return [ImportedLayout(scene_from_png(path))]
    data = read_json(path)
    if isinstance(data, dict) and "annos" in data:
        return [parse_official_layout(data, source, name=scene_name_from(path, "scene"))]
    if isinstance(data, dict) and "images" in data and "annotations" in data:
        result = parse_coco(data, source)
        scenes = list(result.scenes)
        if result.warnings and scenes:
            first = scenes[0]
            scenes[0] = ImportedLayout(first.layout, (*result.warnings, *first.warnings))
        return scenes
    if isinstance(data, dict) and "shapes" in data:
        return [parse_labelme(data, source, name=scene_name_from(path, "labelme scene"))]
    raise LayoutFormatError(
        source, "is not an official scene, a COCO annotation file, a labelme file or an Instance Studio image"
    )
