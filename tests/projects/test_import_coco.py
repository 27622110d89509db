"""COCO import, on files built here the way COCO's own tools write them (pycocotools-encoded RLE,
uncompressed crowd RLE, flat polygon lists, a captions file)."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from engine.request import MAX_INSTANCES, InstanceKind
from projects.database import Project
from projects.errors import LayoutFormatError
from projects.import_coco import ImportResult, caption_from_template, describe_names, parse_coco, read_coco
from projects.scenes import add_scene, list_scenes, scene_layout, scene_to_request

W, H = 640, 480
CATEGORIES = [
    {"id": 17, "name": "cat", "supercategory": "animal"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 16, "name": "bird", "supercategory": "animal"},
]


def rectangle_bitmap(rows: slice, cols: slice, height: int = H, width: int = W) -> np.ndarray:
    bitmap = np.zeros((height, width), dtype=np.uint8)
    bitmap[rows, cols] = 1
    return bitmap


def compressed_rle(bitmap: np.ndarray) -> dict[str, Any]:
    rle = coco_mask.encode(np.asfortranarray(bitmap))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(bitmap: np.ndarray) -> dict[str, Any]:
    """COCO's crowd format: column-major run lengths, starting with a run of zeros."""
    flat = bitmap.flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    if flat[0] == 1:
        runs = [0, *runs]
    return {"size": list(bitmap.shape), "counts": runs}


def annotation(ann_id: int, image_id: int, category_id: int, bbox: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "bbox": bbox,
        "area": extra.pop("area", bbox[2] * bbox[3]),
        "iscrowd": extra.pop("iscrowd", 0),
        "segmentation": extra.pop("segmentation", []),
        **extra,
    }


CROWD_BITMAP = rectangle_bitmap(slice(300, 400), slice(20, 220))
RLE_BITMAP = rectangle_bitmap(slice(50, 150), slice(400, 500))


def coco_instances() -> dict[str, Any]:
    images = [
        {"id": 1, "file_name": "COCO_val2014_000000000001.jpg", "width": W, "height": H, "license": 3},
        {"id": 2, "file_name": "../../evil.jpg", "width": 512, "height": 512},
        {"id": 3, "file_name": "C:\\x", "width": 100, "height": 100},
        {"id": 4, "file_name": "crowded.jpg", "width": W, "height": H},
        {"id": 5, "file_name": "empty.jpg", "width": W, "height": H},
    ]
    annotations = [
        annotation(101, 1, 17, [100, 100, 200, 100], segmentation=[[100, 100, 300, 100, 300, 200, 100, 200]]),
        annotation(102, 1, 18, [400, 50, 100, 100], segmentation=compressed_rle(RLE_BITMAP)),
        annotation(103, 1, 1, [20, 300, 200, 100], iscrowd=1, area=20000, segmentation=uncompressed_rle(CROWD_BITMAP)),
        annotation(
            104,
            1,
            18,
            [10, 10, 70, 30],
            area=1000,
            segmentation=[[10, 10, 30, 10, 30, 30, 10, 30], [50, 10, 80, 10, 80, 40, 50, 40]],
        ),
        annotation(105, 1, 16, [600, 400, 5, 5]),
        annotation(201, 2, 17, [0, 0, 256, 512]),
        annotation(301, 3, 16, [10, 20, 30, 40]),
    ]
    # 40 boxes on image 4, the k-th one k pixels wide: the 30 largest are 11..40.
    annotations += [annotation(400 + k, 4, 17, [0, 0, k, 100]) for k in range(1, 41)]
    return {
        "info": {"description": "written by another tool", "version": "1.0"},
        "licenses": [{"id": 3, "name": "CC BY"}],
        "images": images,
        "annotations": annotations,
        "categories": [dict(c) for c in CATEGORIES],
    }


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def coco_file(tmp_path: Path) -> Path:
    return write_json(tmp_path / "instances_val2014.json", coco_instances())


def scene(result: ImportResult, name: str) -> Any:
    return next(s for s in result.scenes if s.layout.name == name)


def test_every_annotation_kind_becomes_the_right_instance(coco_file: Path) -> None:
    result = read_coco(coco_file)
    assert [s.layout.name for s in result.scenes] == ["COCO_val2014_000000000001", "evil", "x", "crowded"]
    first = result.scenes[0].layout
    assert (first.width, first.height) == (W, H)
    assert first.caption == "a photo of a cat, two dogs, a person and a bird"
    cat, dog, person, dog2, bird = first.instances
    assert [i.caption for i in first.instances] == ["cat", "dog", "person", "dog", "bird"]

    # A single polygon: a mask instance whose outline is the polygon, normalised, and whose box is the bbox.
    assert cat.kind is InstanceKind.MASK and cat.mask is None
    assert cat.box == pytest.approx((100 / W, 100 / H, 300 / W, 200 / H))
    assert cat.polygon == ((100 / W, 100 / H), (300 / W, 100 / H), (300 / W, 200 / H), (100 / W, 200 / H))

    # Compressed RLE made by pycocotools.mask.encode: the same bitmap comes back.
    assert dog.kind is InstanceKind.MASK and dog.mask is not None and dog.polygon is None
    np.testing.assert_array_equal(dog.mask.decode(), RLE_BITMAP)
    assert int(dog.mask.decode().sum()) == 100 * 100
    assert dog.box == pytest.approx((400 / W, 50 / H, 500 / W, 150 / H))

    # Uncompressed crowd RLE: compressed on the way in, same bitmap.
    assert person.kind is InstanceKind.MASK and person.mask is not None
    np.testing.assert_array_equal(person.mask.decode(), CROWD_BITMAP)

    # Two polygons: the larger is the outline, both together are the mask.
    assert dog2.polygon == ((50 / W, 10 / H), (80 / W, 10 / H), (80 / W, 40 / H), (50 / W, 40 / H))
    assert dog2.mask is not None
    decoded = dog2.mask.decode()
    assert decoded.shape == (H, W)
    assert 20 * 20 + 30 * 30 <= int(decoded.sum()) <= 21 * 21 + 31 * 31  # rasterisation includes edges
    assert decoded[20, 20] == 1 and decoded[25, 60] == 1 and decoded[20, 40] == 0

    # No segmentation: a box.
    assert bird.kind is InstanceKind.BOX and bird.box == pytest.approx((600 / W, 400 / H, 605 / W, 405 / H))
    assert all(spec.problems() == [] for s in result.scenes for spec in s.layout.instances)


def test_small_images_get_a_canvas_the_renderer_accepts(coco_file: Path) -> None:
    small = scene(read_coco(coco_file), "x").layout
    assert (small.width, small.height) == (96, 96)
    assert small.instances[0].box == pytest.approx((0.1, 0.2, 0.4, 0.6))


def test_names_from_the_file_never_become_paths(coco_file: Path, tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    names = [s.layout.name for s in read_coco(coco_file).scenes]
    assert "evil" in names and "x" in names
    assert all("/" not in n and "\\" not in n and ":" not in n and ".." not in n for n in names)
    assert sorted(tmp_path.rglob("*")) == before


def test_more_than_thirty_instances_keeps_the_largest_and_warns(coco_file: Path) -> None:
    crowded = scene(read_coco(coco_file), "crowded")
    assert len(crowded.layout.instances) == MAX_INSTANCES
    widths = [round((spec.box[2] - spec.box[0]) * W) for spec in crowded.layout.instances if spec.box]
    assert widths == list(range(11, 41))  # the largest, in file order
    assert crowded.warnings == (
        f"40 instances; kept the {MAX_INSTANCES} largest (at most {MAX_INSTANCES} fit a scene)",
    )
    fewer = scene(read_coco(coco_file, max_instances=5), "crowded")
    assert [round((s.box[2] - s.box[0]) * W) for s in fewer.layout.instances if s.box] == [36, 37, 38, 39, 40]


def test_images_without_instances_are_skipped_with_a_count(coco_file: Path) -> None:
    result = read_coco(coco_file)
    assert "empty" not in [s.layout.name for s in result.scenes]
    assert result.warnings == ("1 images have no instances (after the filters) and were not imported",)


def test_category_filter(coco_file: Path) -> None:
    result = read_coco(coco_file, categories={"Dog", "unicorn"})
    assert [s.layout.name for s in result.scenes] == ["COCO_val2014_000000000001"]
    assert [i.caption for i in result.scenes[0].layout.instances] == ["dog", "dog"]
    assert result.scenes[0].layout.caption == "a photo of two dogs"
    assert "no category named 'unicorn' in the file" in result.warnings


def test_min_area_crowd_and_max_scenes_filters(coco_file: Path) -> None:
    first = read_coco(coco_file, min_area=100).scenes[0].layout
    assert [i.caption for i in first.instances] == ["cat", "dog", "person", "dog"]  # the 25 px bird is gone
    no_crowd = read_coco(coco_file, include_crowd=False).scenes[0].layout
    assert "person" not in [i.caption for i in no_crowd.instances]
    limited = read_coco(coco_file, max_scenes=2)
    assert len(limited.scenes) == 2
    assert "stopped after 2 scenes; 3 more images were not read" in limited.warnings
    with pytest.raises(ValueError, match="max_instances"):
        read_coco(coco_file, max_instances=31)


def test_captions_file_gives_the_first_caption_of_each_image(coco_file: Path, tmp_path: Path) -> None:
    captions = write_json(
        tmp_path / "captions_val2014.json",
        {
            "images": [{"id": 1, "file_name": "x.jpg", "width": W, "height": H}],
            "annotations": [
                {"id": 9, "image_id": 1, "caption": "A cat and two dogs\nnear a person. "},
                {"id": 10, "image_id": 1, "caption": "Second caption."},
                {"id": 11, "image_id": 2, "caption": "A cat on the left."},
            ],
        },
    )
    result = read_coco(coco_file, captions_file=captions)
    assert result.scenes[0].layout.caption == "A cat and two dogs near a person."
    assert scene(result, "evil").layout.caption == "A cat on the left."
    assert scene(result, "crowded").layout.caption == "a photo of 30 cats"
    assert "2 images have no caption in the captions file; the template was used" in result.warnings
    with pytest.raises(LayoutFormatError, match=r"instances_val2014.json: not a COCO captions file"):
        read_coco(coco_file, captions_file=coco_file)


def test_caption_template() -> None:
    assert describe_names(["cat", "dog", "dog", "umbrella"]) == "a cat, two dogs and an umbrella"
    assert describe_names(["person"] * 3 + ["skis", "bus", "teddy bear", "teddy bear"]) == (
        "three people, skis, a bus and two teddy bears"
    )
    assert describe_names(["cat"] * 12) == "12 cats"
    assert caption_from_template("{categories} at night, {0.__class__}", ["cat"]) == "a cat at night, {0.__class__}"
    assert caption_from_template("a photo of {labels}", []) == "a photo of"


def test_invalid_annotations_are_skipped_with_warnings_naming_them(tmp_path: Path) -> None:
    data = coco_instances()
    bad_rle = compressed_rle(rectangle_bitmap(slice(0, 10), slice(0, 10), height=100, width=100))
    data["annotations"] = [
        annotation(1, 1, 17, [10, 10, 20, 20]),
        annotation(2, 1, 18, [0, 0, 10, 10], segmentation=bad_rle),  # a 100x100 mask on a 640x480 image
        annotation(3, 1, 18, [0, 0, 10, 10], segmentation=[[0, 0, 50000, 0, 50000, 90000, 0, 90000]]),
        annotation(4, 1, 18, [0, 0, 10, 10], segmentation={"size": [H, W], "counts": "Pb`n0"}),
        annotation(5, 1, 99, [0, 0, 10, 10]),
        annotation(6, 1, 18, [5000, 5000, 10, 10]),
        annotation(7, 1, 18, ["a", 0, 10, 10]),
        annotation(8, 77, 18, [0, 0, 10, 10]),
        "not an object",
    ]
    path = write_json(tmp_path / "instances_hostile.json", data)
    result = read_coco(path)
    (only,) = result.scenes
    assert [i.caption for i in only.layout.instances] == ["cat", "dog"]  # annotation 3, clipped to the image
    assert sorted(only.layout.instances[1].polygon or ()) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    warnings = "\n".join(only.warnings)
    assert "annotation 2 ('dog') segmentation: RLE size 100x100 does not match the 480x640 image; skipped" in warnings
    assert "annotation 3 ('dog') segmentation reaches outside the 640x480 image; clipped to it" in warnings
    assert "annotation 4 ('dog') segmentation: the RLE does not decode" in warnings
    assert "annotation 5: unknown category 99; skipped" in warnings
    assert "annotation 6 ('dog') bbox lies outside the 640x480 image; skipped" in warnings
    assert "annotation 7 ('dog'): bbox must be [x, y, width, height]" in warnings
    assert "1 annotations refer to no image in the file (annotation 8); skipped" in result.warnings
    assert "1 entries of 'annotations' are not objects; skipped" in result.warnings


def test_a_file_with_nothing_usable_is_refused(tmp_path: Path) -> None:
    data = coco_instances()
    data["annotations"] = [
        annotation(3, 1, 18, [1000, 0, 10, 9], segmentation=[[1000, 0, 50000, 0, 50000, 9, 1000, 9]])
    ]
    path = write_json(tmp_path / "instances_bad.json", data)
    with pytest.raises(LayoutFormatError) as info:
        read_coco(path)
    assert str(info.value).startswith(f"{path}: no image has an instance to import (image 'COCO_val2014_000000000001'")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("images"), "'images' is missing"),
        (lambda d: d.update(annotations={}), "'annotations' is not a list"),
        (lambda d: d["images"][2].pop("width"), r"images\[2\] \(id 3\) needs a 'width' and 'height'"),
        (lambda d: d["images"][1].update(id=1), r"images\[1\].id 1 is used by two images"),
        (lambda d: d["categories"][0].update(name=""), r"categories\[0\].name must be non-empty text"),
        (lambda d: d["images"][0].update(height=-5), r"images\[0\] \(id 1\) needs"),
    ],
)
def test_a_broken_frame_refuses_the_file_naming_the_field(tmp_path: Path, change: Any, problem: str) -> None:
    data = coco_instances()
    change(data)
    path = write_json(tmp_path / "instances_broken.json", data)
    with pytest.raises(LayoutFormatError, match=f"^{path}: {problem}"):
        read_coco(path)
    with pytest.raises(LayoutFormatError, match="top level must be an object"):
        parse_coco([], "list.json")


def test_hostile_json_is_refused_naming_the_file(tmp_path: Path) -> None:
    deep = tmp_path / "instances_deep.json"
    deep.write_bytes(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(LayoutFormatError, match=f"^{deep}: JSON is nested too deeply"):
        read_coco(deep)
    with pytest.raises(LayoutFormatError, match=r"file is \d[\d,]* bytes; at most 100 are read"):
        read_coco(write_json(tmp_path / "instances_big.json", coco_instances()), max_bytes=100)


def test_imported_scenes_are_written_in_one_transaction_and_render(coco_file: Path, project: Project) -> None:
    result = read_coco(coco_file)
    with project.write() as session:
        for imported in result.scenes:
            add_scene(session, imported.layout)
    with project.read() as session:
        scenes = list_scenes(session)
        assert [scene_layout(s) for s in scenes] == list(result.layouts)
        for stored in scenes:
            scene_to_request(session, stored)  # validates every instance and the canvas
