"""COCO instances files (`instances_*.json`) as scenes: one scene per image, one instance per annotation.

Only the annotation file is read; the images are never needed. Each scene is named after its image's
`file_name` (its last component without the extension, sanitised: never used as a path), takes the
image's size (scaled and rounded to a canvas the renderer accepts; geometry is normalised, so it
keeps its place), and gets its caption from a template or from a COCO captions file.

Choices:
- Scene captions from the template replace `{categories}` (or `{labels}`) with the instances'
  category names counted in plain English, in order of first appearance: "a photo of a cat, two
  dogs and an umbrella". Images without a caption in a captions file fall back to the template.
- Instances: the category name is the caption. `bbox` gives the box. A polygon segmentation makes a
  mask instance whose `polygon` is the outline; an object drawn as several polygons keeps its largest
  part as the outline and all parts, drawn together at the scene's canvas size, as its mask bitmap.
  An RLE segmentation (compressed, or uncompressed run lengths as crowd annotations use) becomes the
  mask bitmap (resampled to the canvas when larger). Without a segmentation the instance is a box.
  Geometry reaching past the image is clipped to it, with a warning.
- An annotation that cannot be used (malformed, wholly outside its image, a mask too detailed to
  store (see `projects.import_geometry`), an RLE that does not match the
  image or does not decode, an unknown category) is skipped with a warning naming its id. An image
  with no instance left is not imported (a count is reported); a file with no scene at all is
  refused. Structural problems (no `images` list, an image without a valid size, duplicate ids) refuse
  the file, naming the field.
- At most `max_instances` per scene: the largest (by `area`) are kept, in file order, with a warning.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeGuard

from engine.request import (
    MAX_CAPTION_CHARS,
    MAX_INSTANCES,
    MAX_POLYGON_POINTS,
    InstanceKind,
    InstanceSpec,
    MaskRLE,
)
from engine.validation import brief
from projects.errors import LayoutFormatError
from projects.import_geometry import (
    GeometryError,
    check_instance,
    clip_box,
    clip_polygon,
    coco_rle,
    fit_mask,
    flat_pairs,
    polygon_area,
    rle_area,
    thin,
    union_of_polygons,
)
from projects.official_json import ImportedLayout
from projects.safe_input import (
    MAX_JSON_BYTES,
    check_text,
    clean_text,
    file_stem,
    fit_canvas,
    image_side,
    number,
    read_json,
    sanitise_name,
    shown,
)
from projects.scenes import SceneLayout

DEFAULT_CAPTION_TEMPLATE: Final = "a photo of {categories}"
# How many ids a summary warning lists before "...".
_LISTED: Final = 5

Key = int | str


@dataclass(frozen=True)
class ImportResult:
    """The scenes read from one file, each with its own warnings, plus warnings about the whole file."""

    scenes: tuple[ImportedLayout, ...]
    warnings: tuple[str, ...] = ()

    @property
    def layouts(self) -> tuple[SceneLayout, ...]:
        return tuple(scene.layout for scene in self.scenes)

    def all_warnings(self) -> list[str]:
        """File warnings first, then each scene's, prefixed with the scene's name."""
        return [*self.warnings, *(f"{s.layout.name}: {w}" for s in self.scenes for w in s.warnings)]


# --- captions -----------------------------------------------------------------------------------

_NUMBER_WORDS: Final = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_IRREGULAR: Final = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
    "goose": "geese", "foot": "feet", "tooth": "teeth", "knife": "knives", "leaf": "leaves",
    "wolf": "wolves", "shelf": "shelves", "sheep": "sheep", "fish": "fish", "deer": "deer",
}  # fmt: skip
# Names that are already plural: no article, no change ("skis", not "a skis").
_PLURAL_ONLY: Final = frozenset({"skis", "scissors", "glasses", "sunglasses", "pants", "jeans", "trousers", "shorts"})


def describe_names(names: Iterable[str]) -> str:
    """Names counted in plain English, in order of first appearance: "a cat, two dogs and an umbrella"."""
    counts = Counter(names)
    return natural_join([_counted(name, count) for name, count in counts.items()])


def natural_join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} and {parts[-1]}"


def caption_from_template(template: str, names: Iterable[str]) -> str:
    """`template` with `{categories}` and `{labels}` replaced by the counted names (plain replacement,
    not `str.format`: a template is never evaluated)."""
    description = describe_names(names)
    return " ".join(template.replace("{categories}", description).replace("{labels}", description).split())


def _counted(name: str, count: int) -> str:
    words = name.split(" ")
    last = words[-1].lower()
    if count == 1:
        if last in _PLURAL_ONLY or words[-1][:1].isupper():
            return name
        return f"{_article(name)} {name}"
    number_word = _NUMBER_WORDS[count] if count < len(_NUMBER_WORDS) else str(count)
    return f"{number_word} {' '.join([*words[:-1], _plural(words[-1])])}"


def _article(name: str) -> str:
    lower = name.lower()
    if lower.startswith(("uni", "use", "usu", "eu", "one")):
        return "a"
    return "an" if lower[:1] in set("aeiou") else "a"


def _plural(word: str) -> str:
    lower = word.lower()
    if lower in _PLURAL_ONLY:
        return word
    if lower in _IRREGULAR:
        return _IRREGULAR[lower]
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if lower.endswith("y") and lower[-2:-1] not in set("aeiou"):
        return word[:-1] + "ies"
    return word + "s"


def fit_caption(caption: str, warnings: list[str]) -> str:
    if len(caption) <= MAX_CAPTION_CHARS:
        return caption
    warnings.append(f"the caption has {len(caption)} characters; cut to {MAX_CAPTION_CHARS}")
    return caption[:MAX_CAPTION_CHARS].rstrip()


# --- reading ------------------------------------------------------------------------------------


def read_coco(
    path: str | Path,
    *,
    caption_template: str = DEFAULT_CAPTION_TEMPLATE,
    captions_file: Path | None = None,
    categories: set[str] | None = None,
    min_area: float = 0.0,
    max_instances: int = MAX_INSTANCES,
    max_scenes: int | None = None,
    include_crowd: bool = True,
    max_bytes: int = MAX_JSON_BYTES,
) -> ImportResult:
    """Read a COCO instances file into scenes (see the module docstring for the choices made).

    `categories` keeps only those category names (case-insensitive); `min_area` drops annotations
    smaller than that many pixels; `max_scenes` stops after that many scenes.
    """
    path = Path(path)
    data = read_json(path, max_bytes=max_bytes)
    captions = read_coco_captions(captions_file, max_bytes=max_bytes) if captions_file is not None else None
    return parse_coco(
        data,
        shown(str(path)),
        caption_template=caption_template,
        captions=captions,
        categories=categories,
        min_area=min_area,
        max_instances=max_instances,
        max_scenes=max_scenes,
        include_crowd=include_crowd,
    )


def read_coco_captions(path: str | Path, *, max_bytes: int = MAX_JSON_BYTES) -> dict[Key, str]:
    """The first caption of each image id in a COCO captions file (`captions_*.json`)."""
    source = shown(str(path))
    data = read_json(path, max_bytes=max_bytes)
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise LayoutFormatError(source, "not a COCO captions file: it needs an 'annotations' list")
    captions: dict[Key, str] = {}
    for index, entry in enumerate(data["annotations"]):
        if not isinstance(entry, dict):
            continue
        image_id = entry.get("image_id")
        caption = clean_text(entry.get("caption"), source, f"annotations[{index}].caption")
        if _is_key(image_id) and caption is not None:
            captions.setdefault(image_id, caption)
    if not captions and data["annotations"]:
        raise LayoutFormatError(source, "not a COCO captions file: no entry has an 'image_id' and a 'caption'")
    return captions


def parse_coco(
    data: Any,
    source: str,
    *,
    caption_template: str = DEFAULT_CAPTION_TEMPLATE,
    captions: Mapping[Key, str] | None = None,
    categories: set[str] | None = None,
    min_area: float = 0.0,
    max_instances: int = MAX_INSTANCES,
    max_scenes: int | None = None,
    include_crowd: bool = True,
) -> ImportResult:
    """Parsed COCO instances data as scenes; raises LayoutFormatError naming `source` and the field."""
    if not 1 <= max_instances <= MAX_INSTANCES:
        raise ValueError(f"max_instances must be from 1 to {MAX_INSTANCES}, got {max_instances}")
    if max_scenes is not None and max_scenes < 1:
        raise ValueError(f"max_scenes must be at least 1, got {max_scenes}")
    if not math.isfinite(min_area) or min_area < 0:
        raise ValueError(f"min_area must be a number of pixels, at least 0, got {min_area}")
    check_text(caption_template, source, "the caption template")  # from the command line, say
    return _CocoParser(
        source, caption_template, captions, categories, min_area, max_instances, max_scenes, include_crowd
    ).parse(data)


@dataclass(frozen=True)
class _Image:
    id: Key
    width: int
    height: int
    name: str


class _CocoParser:
    def __init__(
        self,
        source: str,
        caption_template: str,
        captions: Mapping[Key, str] | None,
        categories: set[str] | None,
        min_area: float,
        max_instances: int,
        max_scenes: int | None,
        include_crowd: bool,
    ) -> None:
        self.source = source
        self.caption_template = caption_template
        self.captions = captions
        self.wanted = None if categories is None else {name.strip().casefold() for name in categories}
        self.min_area = min_area
        self.max_instances = max_instances
        self.max_scenes = max_scenes
        self.include_crowd = include_crowd
        self.warnings: list[str] = []

    def error(self, problem: str) -> LayoutFormatError:
        return LayoutFormatError(self.source, problem)

    def parse(self, data: Any) -> ImportResult:
        if not isinstance(data, dict):
            raise self.error("the top level must be an object with 'images', 'annotations' and 'categories'")
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                problem = "missing" if key not in data else "not a list"
                raise self.error(f"'{key}' is {problem}; this is not a COCO instances file")
        category_names = self.read_categories(data["categories"])
        images = self.read_images(data["images"])
        by_image = self.group_annotations(data["annotations"], images)

        scenes: list[ImportedLayout] = []
        empty = 0
        no_caption = 0
        for index, image in enumerate(images.values()):
            if self.max_scenes is not None and len(scenes) == self.max_scenes:
                self.warnings.append(
                    f"stopped after {self.max_scenes} scenes; {len(images) - index} more images were not read"
                )
                break
            annotations = by_image.get(image.id, [])
            scene_warnings: list[str] = []
            kept: list[tuple[float, InstanceSpec]] = []
            for position in annotations:
                record = data["annotations"][position]
                item = self.annotation(record, position, image, category_names, scene_warnings)
                if item is not None:
                    kept.append(item)
            if not kept:
                if scene_warnings:
                    self.warnings.extend(f"image {image.name!r}: {w}" for w in scene_warnings)
                    self.warnings.append(f"image {image.name!r}: no instance left; not imported")
                else:
                    empty += 1
                continue
            if len(kept) > self.max_instances:
                scene_warnings.append(
                    f"{len(kept)} instances; kept the {self.max_instances} largest (at most {MAX_INSTANCES} fit a scene)"
                )
                largest = sorted(range(len(kept)), key=lambda i: -kept[i][0])[: self.max_instances]
                kept = [kept[i] for i in sorted(largest)]
            specs = tuple(spec for _area, spec in kept)
            caption = self.captions.get(image.id) if self.captions is not None else None
            if caption is None:
                no_caption += self.captions is not None
                caption = caption_from_template(self.caption_template, (spec.caption for spec in specs))
            width, height, note = fit_canvas(image.width, image.height)
            if note:
                scene_warnings.append(note)
            layout = SceneLayout(
                name=image.name,
                caption=fit_caption(caption, scene_warnings),
                width=width,
                height=height,
                instances=specs,
            )
            scenes.append(ImportedLayout(layout, tuple(scene_warnings)))
        if empty:
            self.warnings.append(f"{empty} images have no instances (after the filters) and were not imported")
        if no_caption:
            self.warnings.append(f"{no_caption} images have no caption in the captions file; the template was used")
        if not scenes:
            detail = f" ({self.warnings[0]})" if self.warnings else ""
            raise self.error(f"no image has an instance to import{detail}")
        return ImportResult(tuple(scenes), tuple(self.warnings))

    # --- the frame: categories and images (problems here refuse the file) -------------------------

    def read_categories(self, records: list[Any]) -> dict[Key, str]:
        names: dict[Key, str] = {}
        for index, record in enumerate(records):
            where = f"categories[{index}]"
            if not isinstance(record, dict):
                raise self.error(f"{where} must be an object")
            category_id, name = record.get("id"), clean_text(record.get("name"), self.source, f"{where}.name")
            if not _is_key(category_id):
                raise self.error(f"{where}.id must be a number or text")
            if name is None:
                raise self.error(f"{where}.name must be non-empty text")
            if category_id in names:
                raise self.error(f"{where}.id {brief(category_id)} is used by two categories")
            names[category_id] = name
        if self.wanted is not None:
            present = {name.casefold() for name in names.values()}
            for missing in sorted(self.wanted - present):
                self.warnings.append(f"no category named {missing!r} in the file")
        return names

    def read_images(self, records: list[Any]) -> dict[Key, _Image]:
        images: dict[Key, _Image] = {}
        for index, record in enumerate(records):
            where = f"images[{index}]"
            if not isinstance(record, dict):
                raise self.error(f"{where} must be an object")
            image_id = record.get("id")
            if not _is_key(image_id):
                raise self.error(f"{where}.id must be a number or text")
            if image_id in images:
                raise self.error(f"{where}.id {brief(image_id)} is used by two images")
            width, height = image_side(record.get("width")), image_side(record.get("height"))
            if width is None or height is None:
                raise self.error(f"{where} (id {brief(image_id)}) needs a 'width' and 'height' in whole pixels")
            name = sanitise_name(file_stem(record.get("file_name")), f"image {image_id}")
            images[image_id] = _Image(image_id, width, height, name)
        return images

    def group_annotations(self, records: list[Any], images: Mapping[Key, _Image]) -> dict[Key, list[int]]:
        """Annotation positions per image id, in file order; others reported once, summarised."""
        by_image: dict[Key, list[int]] = {}
        unknown: list[str] = []
        not_objects = 0
        for position, record in enumerate(records):
            if not isinstance(record, dict):
                not_objects += 1
                continue
            image_id = record.get("image_id")
            if _is_key(image_id) and image_id in images:
                by_image.setdefault(image_id, []).append(position)
            else:
                unknown.append(_annotation_label(record, position))
        if not_objects:
            self.warnings.append(f"{not_objects} entries of 'annotations' are not objects; skipped")
        if unknown:
            listed = ", ".join(unknown[:_LISTED]) + (", ..." if len(unknown) > _LISTED else "")
            self.warnings.append(f"{len(unknown)} annotations refer to no image in the file ({listed}); skipped")
        return by_image

    # --- one annotation (problems here skip the annotation, with a warning) ----------------------

    def annotation(
        self, record: dict[str, Any], position: int, image: _Image, names: Mapping[Key, str], warnings: list[str]
    ) -> tuple[float, InstanceSpec] | None:
        """(area, instance), or None for an annotation that is filtered out or cannot be used."""
        label = _annotation_label(record, position)
        category_id = record.get("category_id")
        if not _is_key(category_id) or category_id not in names:
            warnings.append(f"{label}: unknown category {category_id!r:.40}; skipped")
            return None
        caption = names[category_id]
        if self.wanted is not None and caption.casefold() not in self.wanted:
            return None
        if record.get("iscrowd") in (1, True) and not self.include_crowd:
            return None
        label = f"{label} ({caption[:40]!r})"
        notes: list[str] = []
        try:
            spec, derived_area = _instance(record, caption, image, label, notes)
        except GeometryError as exc:
            warnings.append(f"{exc}; skipped")
            return None
        warnings.extend(notes)
        area = number(record.get("area"))
        if area is None or area < 0:
            area = derived_area
        if area < self.min_area:
            return None
        return area, spec


def _instance(
    record: dict[str, Any], caption: str, image: _Image, label: str, notes: list[str]
) -> tuple[InstanceSpec, float]:
    """One annotation as an instance and its area in pixels; GeometryError when it cannot be used.

    Geometry is clipped to the image (what lies wholly outside is refused), and masks are made at the
    scene's canvas size, so the work and what is stored are bounded by the scene, not by the file."""
    width, height = image.width, image.height
    canvas_w, canvas_h, _note = fit_canvas(width, height)
    box = None
    box_area = 0.0
    bbox = record.get("bbox")
    if bbox is not None and bbox != []:
        values = [number(v) for v in bbox] if isinstance(bbox, list) and len(bbox) == 4 else [None]
        if any(v is None for v in values):
            raise GeometryError(f"{label}: bbox must be [x, y, width, height] in pixels")
        x, y, w, h = (float(v or 0.0) for v in values)
        if w < 0 or h < 0:
            raise GeometryError(f"{label}: bbox has a negative width or height")
        box = clip_box((x, y, x + w, y + h), width, height, f"{label} bbox", notes)
        if box is not None:
            box_area = (box[2] - box[0]) * width * (box[3] - box[1]) * height

    polygon: tuple[tuple[float, float], ...] | None = None
    mask: MaskRLE | None = None
    area = box_area
    segmentation = record.get("segmentation")
    where = f"{label} segmentation"
    if isinstance(segmentation, list) and segmentation:
        parts = [flat_pairs(part, where) for part in segmentation]
        parts = [part for part in parts if len(part) >= 3 and polygon_area(part) > 0]
        if not parts:
            raise GeometryError(f"{where}: no polygon has an area")
        outlines = _on_image(parts, width, height, where, notes)
        areas = [polygon_area([(x * width, y * height) for x, y in outline]) for outline in outlines]
        polygon = outlines[max(range(len(outlines)), key=areas.__getitem__)]
        if len(polygon) > MAX_POLYGON_POINTS:
            notes.append(f"{where}: {len(polygon)} points; thinned to {MAX_POLYGON_POINTS}")
            polygon = thin(polygon, MAX_POLYGON_POINTS)
        area = sum(areas)
        if len(outlines) > 1:
            mask = union_of_polygons(outlines, canvas_w, canvas_h, where, notes)
    elif isinstance(segmentation, dict):
        mask = coco_rle(segmentation, width, height, where)
        area = rle_area(mask)
        if area == 0:
            raise GeometryError(f"{where}: the mask is empty")
        mask = fit_mask(mask, canvas_w, canvas_h, where)
    elif segmentation is not None and segmentation != []:
        raise GeometryError(f"{where} must be a list of polygons or an RLE object")

    if polygon is not None or mask is not None:
        kind = InstanceKind.MASK
    elif box is not None:
        kind = InstanceKind.BOX
    else:
        raise GeometryError(f"{label}: no location (a bbox with an area, or a segmentation)")
    spec = InstanceSpec(caption[:MAX_CAPTION_CHARS], kind, box=box, polygon=polygon, mask=mask)
    check_instance(spec, label)
    return spec, area


def _on_image(
    parts: list[list[tuple[float, float]]], width: int, height: int, where: str, notes: list[str]
) -> list[tuple[tuple[float, float], ...]]:
    """The polygons of one segmentation clipped to the image; parts wholly outside are dropped, and
    the annotation is refused when none is left."""
    outlines: list[tuple[tuple[float, float], ...]] = []
    dropped: list[str] = []
    for part in parts:
        try:
            outlines.append(clip_polygon(part, width, height, where, dropped))
        except GeometryError as exc:
            dropped.append(str(exc))
    if not outlines:
        raise GeometryError(f"{where} lies outside the {width}x{height} image")
    if dropped:
        notes.append(f"{where} reaches outside the {width}x{height} image; clipped to it")
    return outlines


def _annotation_label(record: dict[str, Any], position: int) -> str:
    annotation_id = record.get("id")
    if _is_key(annotation_id):
        return f"annotation {annotation_id!r:.40}"
    return f"annotation #{position + 1}"


def _is_key(value: object) -> TypeGuard[Key]:
    """An id a COCO file may use: an integer or text (not a boolean)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)
