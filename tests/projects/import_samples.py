"""One small valid file per importer, and a way to run an import the way the CLI does.

The hostile-input tests (`test_import_hostile`) and the fuzz tests (`test_import_fuzz`) start from these
samples and break them. Every sample uses each location kind its format has, so a mutation can reach
every reading path: numbers, text, masks, polygons.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from engine.request import InstanceKind, InstanceSpec, MaskRLE, RenderRequest
from projects.png_metadata import REQUEST_KEY

# A 4x4 mask with its top-left 2x2 set, as COCO RLE (column-major runs: 0, 2, 2, 2, 10).
_MASK = {"size": [4, 4], "counts": [0, 2, 2, 2, 10]}

OFFICIAL: dict[str, Any] = {
    "caption": "a cat and a dog in a garden",
    "width": 512,
    "height": 512,
    "annos": [
        {"caption": "a cat", "bbox": [10, 20, 100, 120], "mask": [], "category_name": "cat"},
        {"caption": "a dog", "point": [300.5, 200]},
        {"caption": "a path", "scribble": [[0, 500], [250, 400], [511, 300]]},
        {"caption": "a pond", "polygon": [[300, 300], [400, 300], [350, 400]]},
        {"caption": "a stone", "mask": {"size": [512, 512], "counts": [0, 200, 512 * 512 - 200]}},
    ],
}

COCO: dict[str, Any] = {
    "info": {"description": "test"},
    "images": [
        {"id": 1, "file_name": "photo.jpg", "width": 640, "height": 480},
        {"id": "two", "file_name": "dir/other.png", "width": 4, "height": 4},
    ],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 10, 100, 50], "area": 5000, "iscrowd": 0},
        {
            "id": 11,
            "image_id": 1,
            "category_id": 2,
            "bbox": [200, 200, 100, 100],
            "segmentation": [[200, 200, 300, 200, 300, 300], [210, 210, 220, 210, 220, 220]],
        },
        {"id": 12, "image_id": "two", "category_id": 1, "segmentation": dict(_MASK), "iscrowd": 1},
    ],
}

LABELME: dict[str, Any] = {
    "version": "5.4.1",
    "flags": {},
    "imagePath": "photo.jpg",
    "imageData": None,
    "imageWidth": 400,
    "imageHeight": 300,
    "shapes": [
        {"label": "cat", "shape_type": "rectangle", "points": [[10, 10], [100, 80]], "flags": {}},
        {"label": "star", "shape_type": "point", "points": [[40, 30]]},
        {"label": "road", "shape_type": "linestrip", "points": [[0, 150], [200, 100], [399, 299]]},
        {"label": "kite", "shape_type": "polygon", "points": [[200, 30], [260, 90], [200, 150]]},
        {"label": "sun", "shape_type": "circle", "points": [[350, 30], [350, 70]]},
    ],
}

REQUEST: dict[str, Any] = RenderRequest(
    prompt="a cat and a dog",
    width=64,
    height=64,
    seed=7,
    negative_prompt="blurry",
    steps=20,
    instances=(
        InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.1, 0.5, 0.5)),
        InstanceSpec("a dog", InstanceKind.POINT, point=(0.7, 0.7)),
        InstanceSpec("a path", InstanceKind.SCRIBBLE, scribble=((0.0, 0.0), (1.0, 1.0))),
        InstanceSpec("a pond", InstanceKind.MASK, polygon=((0.1, 0.6), (0.4, 0.6), (0.2, 0.9))),
        InstanceSpec("a stone", InstanceKind.MASK, mask=MaskRLE.from_bitmap([[1, 1, 0, 0]] * 4)),
    ),
).to_dict()


def png_with_request(request_text: str, size: tuple[int, int] = (8, 8)) -> bytes:
    """A PNG carrying `request_text` as our request chunk (iTXt when it is not Latin-1)."""
    info = PngImagePlugin.PngInfo()
    info.add_text(REQUEST_KEY, request_text)
    out = io.BytesIO()
    Image.new("RGB", size, "gray").save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def json_bytes(data: Any) -> bytes:
    """`data` as JSON the way a careless writer would: NaN and lone surrogates (as escapes) allowed."""
    return json.dumps(data, allow_nan=True).encode("ascii")


def request_png(data: Any) -> bytes:
    return png_with_request(json.dumps(data, allow_nan=True))


@dataclass(frozen=True)
class Importer:
    name: str
    command: str  # the CLI command that imports such a file
    suffix: str
    sample: dict[str, Any]
    encode: Callable[[Any], bytes]  # the (mutated) sample as the file's bytes

    def sample_bytes(self) -> bytes:
        return self.encode(copy.deepcopy(self.sample))


IMPORTERS = (
    Importer("official", "import-json", ".json", OFFICIAL, json_bytes),
    Importer("coco", "import-coco", ".json", COCO, json_bytes),
    Importer("labelme", "import-labelme", ".json", LABELME, json_bytes),
    Importer("png", "import-png", ".png", REQUEST, request_png),
)


def run_import(command: str, project: Path, file: Path) -> tuple[str, str]:
    """Run the CLI's import command function (as `main.py COMMAND PROJECT FILE` would, without its error
    handling): returns (stdout, stderr); app errors and anything else propagate."""
    from cli.parser import build_parser

    def no_gui(_args: object) -> int:
        raise AssertionError("the GUI was asked for")

    args = build_parser(no_gui).parse_args([command, str(project), str(file)])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        args.func(args)
    return out.getvalue(), err.getvalue()


def project_bytes(project: Path) -> dict[str, bytes]:
    """Every file of the project (the database and any -wal / -shm beside it), by name."""
    return {p.name: p.read_bytes() for p in sorted(project.parent.glob(project.name + "*"))}


@contextlib.contextmanager
def unchanged_on_failure(project: Path) -> Iterator[None]:
    """Asserts that the project's files are byte-for-byte the same when the block raises."""
    before = project_bytes(project)
    try:
        yield
    except BaseException:
        assert project_bytes(project) == before, "a failed import changed the project file"
        raise
