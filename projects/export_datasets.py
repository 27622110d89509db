"""Dataset annotations (COCO, YOLO) built from the layouts the images were rendered from.

Categories are the instance captions, whitespace-normalised, one per distinct caption, numbered in
order of first appearance (COCO ids from 1, YOLO classes from 0). Which geometry becomes which label
is decided in `projects.export_labels`; instances without extent (points) are skipped and counted.

COCO (`annotations.json`): `file_name` is relative to `images/`; every image has an
`instance_studio` record (render, scene, seed, model hashes, request); every annotation has a pixel
`bbox`, an `area`, `iscrowd` 0, the instance's `caption`, and for a mask or polygon instance a
`segmentation` as compressed RLE at the image size.

YOLO (`images/`, `labels/`, `data.yaml`, `provenance.jsonl`): one `labels/NAME.txt` per image
(empty for an image without labels). Detection lines are `class cx cy w h`; with `segments` every
line is `class x1 y1 x2 y2 ...` (the YOLO segment task), a box or scribble written as its rectangle.

Labels are the layout as drawn (`labels="drawn"`), or what the render's placement check found
(`labels="found"`): each found instance's box (no region; a segment line is its rectangle), and an
instance the check did not find (or a render never checked) gets no label and is counted.

Split datasets (`projects.export_splits`): COCO writes `annotations/instances_SPLIT.json` per split with
`file_name` relative to `images/SPLIT/`; YOLO writes `images/SPLIT/`, `labels/SPLIT/` and names the
split folders in `data.yaml`. Without splits YOLO's `train` and `val` both name `images` (one set of
images, no held-out part), as Ultralytics needs both keys.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from engine.request import InstanceKind, InstanceSpec
from projects.export_images import json_bytes
from projects.export_labels import Label, found_label, instance_label
from projects.export_source import RenderData
from projects.png_metadata import app_version


@dataclass
class LabelCounts:
    annotations: int = 0
    skipped_points: int = 0
    skipped_empty: int = 0
    skipped_not_found: int = 0  # labels from the check: instances it did not find
    skipped_unchecked: int = 0  # labels from the check: instances of renders never checked


LabelSource = Literal["drawn", "found"]


class Categories:
    """Captions to category indices, in order of first appearance."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}

    def index(self, caption: str) -> int:
        name = " ".join(caption.split())
        return self._index.setdefault(name, len(self._index))

    @property
    def names(self) -> list[str]:
        return list(self._index)


def labelled_instances(
    render: RenderData, width: int, height: int, counts: LabelCounts, source: LabelSource = "drawn"
) -> list[tuple[int, InstanceSpec, Label]]:
    """(slot, spec, label) for every instance that has a label; counts the ones that have none."""
    if source == "found":
        return _found_instances(render, width, height, counts)
    result = []
    for slot, spec in enumerate(render.request.instances):
        label = instance_label(spec, width, height)
        if label is None:
            if spec.kind is InstanceKind.POINT:
                counts.skipped_points += 1
            else:
                counts.skipped_empty += 1
            continue
        counts.annotations += 1
        result.append((slot, spec, label))
    return result


def _found_instances(
    render: RenderData, width: int, height: int, counts: LabelCounts
) -> list[tuple[int, InstanceSpec, Label]]:
    instances = render.request.instances
    report = render.report
    if report is None or len(report.instances) != len(instances):  # never checked, or not this layout's check
        counts.skipped_unchecked += len(instances)
        return []
    result = []
    for slot, (spec, found) in enumerate(zip(instances, report.instances, strict=True)):
        if not found.found or found.box is None:
            counts.skipped_not_found += 1
            continue
        counts.annotations += 1
        result.append((slot, spec, found_label(found.box, width, height)))
    return result


class CocoDataset:
    """One annotation file; the splits of one export share their categories and counts."""

    def __init__(
        self,
        project_name: str,
        *,
        labels: LabelSource = "drawn",
        categories: Categories | None = None,
        counts: LabelCounts | None = None,
    ) -> None:
        self.project_name = project_name
        self.labels = labels
        self.counts = LabelCounts() if counts is None else counts
        self.categories = Categories() if categories is None else categories
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []

    def add(self, render: RenderData, file_name: str, width: int, height: int) -> None:
        image_id = len(self._images) + 1
        self._images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": width,
                "height": height,
                "date_captured": render.ref.created_at.isoformat(timespec="seconds") + "Z",
                "instance_studio": render.provenance,
            }
        )
        for slot, spec, label in labelled_instances(render, width, height, self.counts, self.labels):
            annotation: dict[str, Any] = {
                "id": len(self._annotations) + 1,
                "image_id": image_id,
                "category_id": self.categories.index(spec.caption) + 1,
                "caption": spec.caption,
                "bbox": list(label.bbox),
                "area": label.area,
                "iscrowd": 0,
                "instance_studio": {"slot": slot, "kind": spec.kind.value, "labels": self.labels},
            }
            if label.rle is not None:
                annotation["segmentation"] = label.rle
            self._annotations.append(annotation)

    def to_json(self) -> bytes:
        now = dt.datetime.now(dt.UTC)
        data = {
            "info": {
                "description": f"{self.project_name}, exported by Instance Studio",
                "version": app_version(),
                "year": now.year,
                "date_created": now.isoformat(timespec="seconds"),
            },
            "licenses": [],
            "images": self._images,
            "annotations": self._annotations,
            "categories": [
                {"id": i + 1, "name": name, "supercategory": "instance"}
                for i, name in enumerate(self.categories.names)
            ],
        }
        return json_bytes(data)


class YoloDataset:
    def __init__(
        self,
        *,
        segments: bool,
        labels: LabelSource = "drawn",
        categories: Categories | None = None,
        counts: LabelCounts | None = None,
    ) -> None:
        self.segments = segments
        self.labels_from = labels
        self.counts = LabelCounts() if counts is None else counts
        self.categories = Categories() if categories is None else categories
        self._provenance: list[bytes] = []

    def labels(self, render: RenderData, width: int, height: int) -> bytes:
        lines = []
        for _slot, spec, label in labelled_instances(render, width, height, self.counts, self.labels_from):
            cls = self.categories.index(spec.caption)
            if self.segments:
                coords = [_clip(v) for point in label.polygon for v in point]
            else:
                x, y, w, h = label.bbox
                coords = [_clip((x + w / 2) / width), _clip((y + h / 2) / height), _clip(w / width), _clip(h / height)]
            lines.append(" ".join([str(cls), *(f"{v:.6f}" for v in coords)]))
        return "".join(f"{line}\n" for line in lines).encode("ascii")

    def record(self, render: RenderData, image: str, label: str) -> None:
        self._provenance.append(json_bytes({"image": image, "label": label, **render.provenance}))

    def provenance_jsonl(self) -> bytes:
        return b"".join(line + b"\n" for line in self._provenance)

    def data_yaml(self, root: str, splits: tuple[str, ...] | None = None) -> bytes:
        """`splits`: the split folders under images/ (train and val at least); None: one set, `images`."""
        task = "segment" if self.segments else "detect"
        source = "the layouts the images were rendered from" if self.labels_from == "drawn" else "placement checks"
        folders = [f"{name}: images/{name}" for name in splits] if splits else ["train: images", "val: images"]
        lines = [
            f"# YOLO {task} dataset exported by Instance Studio {app_version()}.",
            f"# Labels come from {source}; provenance.jsonl and provenance.json say which.",
            *([] if splits else ["# No split was asked for: train and val are the same images."]),
            f"path: {_yaml_string(root)}",
            *folders,
            f"nc: {len(self.categories.names)}",
            "names:" if self.categories.names else "names: {}",
            *(f"  {i}: {_yaml_string(name)}" for i, name in enumerate(self.categories.names)),
        ]
        return "".join(f"{line}\n" for line in lines).encode("utf-8")


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))


def _yaml_string(text: str) -> str:
    """A YAML double-quoted scalar; anything outside printable ASCII is escaped as \\uXXXX or \\UXXXXXXXX."""
    out = []
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'
