"""Export rendered images, and datasets labelled from the layouts they were rendered from.

Formats (`ExportOptions.format`), each a folder or, with `zip`, one .zip holding the same files:

- `images`: `NAME.png` per render (+ `NAME.json` with `sidecar`).
- `coco`: `annotations.json` and `images/NAME.png`; with a split, `annotations/instances_SPLIT.json`
  and `images/SPLIT/NAME.png` per split.
- `yolo`: `data.yaml`, `images/NAME.png`, `labels/NAME.txt`, `provenance.jsonl`; box labels, or
  polygon labels (the segment task) with `segments`; with a split, `images/SPLIT/` and `labels/SPLIT/`.

Datasets (`coco`, `yolo`) also get `provenance.json` (`projects.export_provenance`). Which renders go in
is `which` (or `render_ids`), then `include` (`projects.export_selection`: by default only renders whose
every instance passed its placement check, for datasets); `labels` says whether labels are the layout
as drawn or the boxes the check found; `split` cuts the dataset by scene (`projects.export_splits`).
Everything is decided, and a split that would be empty refused, before the first file is written.

With `annotated`, every format also gets `annotated/NAME.png`, a preview with the layout drawn on.
Labels, sidecars and provenance come from each render's frozen request (the layout it was rendered
from), not from its scene as edited since. How geometry becomes labels, and why point instances are
skipped, is described in `projects.export_labels`; the file formats in `projects.export_datasets`.

Exports are all or nothing: each file is written atomically into a folder that must be new or empty
(a zip under a temporary name, renamed at the end), and a failure or a cancel removes every file the
export had written (and the folders it made) before the error is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from projects.database import Project
from projects.export_datasets import Categories, CocoDataset, LabelCounts, LabelSource, YoloDataset
from projects.export_errors import (
    ExportCancelled,
    ExportDestinationError,
    ExportDiskFullError,
    ExportError,
    ExportPermissionError,
    NothingToExportError,
)
from projects.export_images import annotated_png, prepare_png, sidecar_json
from projects.export_names import DEFAULT_TEMPLATE, TEMPLATE_FIELDS, NameAllocator, check_template
from projects.export_output import ExportOutput, open_output
from projects.export_provenance import Provenance
from projects.export_selection import INCLUDES, Include, LeftOut, include_renders
from projects.export_source import RenderData, load_render, select_renders
from projects.export_splits import SplitPlan, SplitRatios, plan_splits

__all__ = [
    "DEFAULT_TEMPLATE",
    "TEMPLATE_FIELDS",
    "ExportCancelled",
    "ExportDestinationError",
    "ExportDiskFullError",
    "ExportError",
    "ExportFormat",
    "ExportOptions",
    "ExportPermissionError",
    "ExportReport",
    "Include",
    "LabelSource",
    "LeftOut",
    "NothingToExportError",
    "SplitRatios",
    "default_include",
    "export_project",
]

ExportFormat = Literal["images", "coco", "yolo"]
FORMATS: Final = ("images", "coco", "yolo")
WHICH: Final = ("latest", "all")
LABELS: Final = ("drawn", "found")


def default_include(format: str) -> Include:
    """Datasets take only placed renders unless told otherwise; plain images take everything."""
    return "everything" if format == "images" else "placed"


@dataclass(frozen=True)
class ExportOptions:
    """What to export and how.

    `render_ids` selects exactly those renders, in that order, and overrides `which`; `scenes` (ids
    or names) limits a `which` selection to those scenes, and then each must have a render. The
    `template` fields are {project}, {scene}, {seed}, {index} (the render's number in its scene: 1 for
    its first render, 2 for the next; the same in every export, whatever else is exported) and {date}
    (of the render, UTC, YYYYMMDD-HHMMSS); names are sanitised and made unique.
    """

    format: ExportFormat = "images"
    which: Literal["latest", "all"] = "latest"
    render_ids: tuple[int, ...] | None = None
    scenes: tuple[str | int, ...] | None = None
    template: str = DEFAULT_TEMPLATE
    sidecar: bool = False
    annotated: bool = False
    zip: bool = False
    segments: bool = False  # yolo only: polygon lines (the segment task) instead of boxes
    include: Include | None = None  # None: default_include(format)
    labels: LabelSource = "drawn"  # coco and yolo: the layout as drawn, or the boxes the check found
    split: SplitRatios | None = None  # coco and yolo: train/val/test by scene; None: one set
    split_seed: int = 0

    @property
    def chosen_include(self) -> Include:
        return self.include or default_include(self.format)


@dataclass(frozen=True)
class ExportReport:
    out: Path
    files: tuple[str, ...]  # relative paths (in a zip: member names), in the order written
    images: int
    annotations: int = 0
    skipped_points: int = 0  # point instances: no extent, so no box or region label
    skipped_empty: int = 0  # instances whose region is empty at the image size
    scenes_without_renders: int = 0  # skipped when exporting all scenes
    reembedded: int = 0  # stored PNGs that lacked metadata chunks and were re-saved with them
    categories: tuple[str, ...] = ()  # dataset categories, in id order
    include: Include = "everything"
    labels: LabelSource = "drawn"
    left_out: tuple[LeftOut, ...] = ()  # renders the include setting left out, by reason
    best_with_misses: int = 0  # include "best": chosen renders that still miss an instance
    skipped_not_found: int = 0  # labels "found": instances the check did not find
    skipped_unchecked: int = 0  # labels "found": instances of renders never checked
    splits: tuple[tuple[str, int], ...] = ()  # (split, images) when split

    def notes(self) -> list[str]:
        """What was left out or got no label, and why, one line each (empty when nothing was)."""
        lines = [item.describe() for item in self.left_out]
        if self.best_with_misses:
            lines.append(f"{self.best_with_misses} scene(s)' best render still misses an instance")
        if self.skipped_points:
            lines.append(f"{self.skipped_points} point instance(s) have no extent and got no label")
        if self.skipped_empty:
            lines.append(f"{self.skipped_empty} instance(s) are empty at the image size and got no label")
        if self.skipped_not_found:
            lines.append(f"{self.skipped_not_found} instance(s) the placement check did not find got no label")
        if self.skipped_unchecked:
            lines.append(f"{self.skipped_unchecked} instance(s) of unchecked renders got no found label")
        return lines


def export_project(
    project: Project,
    out: Path,
    options: ExportOptions,
    *,
    progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> ExportReport:
    """Export the selected renders to `out` (a new or empty folder, or with `zip` a new .zip file).

    `progress(done, total)` is called after each image; `should_cancel()` is asked before each one,
    and a cancel raises `ExportCancelled` after removing what was written. Raises `ExportError`
    subclasses with a one-line message (and `SceneNotFoundError` for an unknown scene).
    """
    _check_options(options)
    out = Path(out).absolute()
    include = options.chosen_include
    which = "all" if include == "best" else options.which  # best chooses among all of a scene's renders
    selection = select_renders(project, which, options.scenes, options.render_ids)
    included = include_renders(selection.renders, include, selection.thresholds)
    renders = included.renders
    plan = None
    if options.split is not None:
        scene_ids = [ref.scene_id for ref in renders]
        plan = plan_splits(scene_ids, options.split, options.split_seed, format=options.format)
    names = NameAllocator(options.template, selection.project_name)
    stems = [
        names.stem(
            scene_name=ref.scene_name,
            scene_id=ref.scene_id,
            seed=ref.seed,
            index=ref.number,
            created=ref.created_at,
            render_id=ref.render_id,
        )
        for ref in renders
    ]
    provenance = Provenance(selection.project_name, _settings(options, include), selection.thresholds)
    output = open_output(out, as_zip=options.zip)
    writer = _Writer(output, options, selection.project_name, plan, provenance)
    try:
        for done, (ref, stem) in enumerate(zip(renders, stems, strict=True)):
            if should_cancel is not None and should_cancel():
                raise ExportCancelled(done, len(renders))
            writer.add(load_render(project, ref), stem)
            if progress is not None:
                progress(done + 1, len(renders))
        writer.finish("." if options.zip else str(out), included.left_out, included.best_with_misses)
        output.commit()
    except BaseException:
        output.abort()
        raise
    counts = writer.counts
    return ExportReport(
        out=out,
        files=tuple(writer.files),
        images=len(renders),
        annotations=counts.annotations,
        skipped_points=counts.skipped_points,
        skipped_empty=counts.skipped_empty,
        scenes_without_renders=selection.scenes_without_renders,
        reembedded=writer.reembedded,
        categories=tuple(writer.categories.names),
        include=include,
        labels=options.labels,
        left_out=included.left_out,
        best_with_misses=included.best_with_misses,
        skipped_not_found=counts.skipped_not_found,
        skipped_unchecked=counts.skipped_unchecked,
        splits=() if plan is None else tuple((name, writer.split_images.get(name, 0)) for name in plan.names),
    )


def _settings(options: ExportOptions, include: Include) -> dict[str, object]:
    """The options that shaped the dataset, for its provenance file."""
    return {
        "format": options.format,
        "which": "render ids" if options.render_ids is not None else options.which,
        "include": include,
        "labels": options.labels,
        "segments": options.segments,
        "split": None if options.split is None else options.split.to_dict(),
        "split_seed": None if options.split is None else options.split_seed,
    }


def _check_options(options: ExportOptions) -> None:
    if options.format not in FORMATS:
        raise ExportError(f"unknown export format {options.format!r}; use one of {', '.join(FORMATS)}")
    if options.which not in WHICH:
        raise ExportError(f"unknown selection {options.which!r}; use one of {', '.join(WHICH)}")
    if options.segments and options.format != "yolo":
        raise ExportError("segments apply to the yolo format only (COCO always carries the masks)")
    if options.include is not None and options.include not in INCLUDES:
        raise ExportError(f"unknown include {options.include!r}; use one of {', '.join(INCLUDES)}")
    if options.labels not in LABELS:
        raise ExportError(f"unknown labels {options.labels!r}; use one of {', '.join(LABELS)}")
    if options.format == "images" and options.labels != "drawn":
        raise ExportError("labels from the placement check apply to the coco and yolo formats only")
    if options.format == "images" and options.split is not None:
        raise ExportError("splits apply to the coco and yolo formats only")
    if options.split is not None and not isinstance(options.split, SplitRatios):
        raise ExportError("the split must be SplitRatios (train, val, test)")
    check_template(options.template)


class _Writer:
    """Writes one image's files, and the dataset files at the end, through an output."""

    def __init__(
        self,
        output: ExportOutput,
        options: ExportOptions,
        project_name: str,
        plan: SplitPlan | None,
        provenance: Provenance,
    ) -> None:
        self.output = output
        self.options = options
        self.plan = plan
        self.provenance = provenance
        self.files: list[str] = []
        self.reembedded = 0
        self.split_images: dict[str, int] = {}
        # One label count and one category list for the whole export, whatever its splits.
        self.counts = LabelCounts()
        self.categories = Categories()
        fmt = options.format
        self.is_dataset = fmt != "images"
        splits: tuple[str | None, ...] = (None,) if plan is None else plan.names
        self.coco = (
            {
                split: CocoDataset(project_name, labels=options.labels, categories=self.categories, counts=self.counts)
                for split in splits
            }
            if fmt == "coco"
            else {}
        )
        self.yolo = (
            YoloDataset(
                segments=options.segments, labels=options.labels, categories=self.categories, counts=self.counts
            )
            if fmt == "yolo"
            else None
        )

    def write(self, relative: str, data: bytes) -> None:
        self.output.write(relative, data)
        self.files.append(relative)

    def add(self, render: RenderData, stem: str) -> None:
        split = None if self.plan is None else self.plan.scene_split[render.ref.scene_id]
        folder = "" if split is None else f"{split}/"
        image_dir = "" if not self.is_dataset else f"images/{folder}"
        image = prepare_png(render)
        self.reembedded += image.reembedded
        image_path = f"{image_dir}{stem}.png"
        self.write(image_path, image.png)
        if split is not None:
            self.split_images[split] = self.split_images.get(split, 0) + 1
        if self.options.sidecar:
            self.write(f"{image_dir}{stem}.json", sidecar_json(render, f"{stem}.png"))
        if self.options.annotated:
            self.write(f"annotated/{stem}.png", annotated_png(image.png, render.request.instances))
        if self.coco:
            self.coco[split].add(render, f"{stem}.png", image.width, image.height)
        if self.yolo is not None:
            label_path = f"labels/{folder}{stem}.txt"
            self.write(label_path, self.yolo.labels(render, image.width, image.height))
            self.yolo.record(render, image_path, label_path)
        if self.is_dataset:
            self.provenance.add(render, image_path, split)

    def finish(self, root: str, left_out: tuple[LeftOut, ...], best_with_misses: int) -> None:
        for split, dataset in self.coco.items():
            self.write(
                "annotations.json" if split is None else f"annotations/instances_{split}.json", dataset.to_json()
            )
        if self.yolo is not None:
            self.write("provenance.jsonl", self.yolo.provenance_jsonl())
            self.write("data.yaml", self.yolo.data_yaml(root, None if self.plan is None else self.plan.names))
        if self.is_dataset:
            self.write("provenance.json", self.provenance.to_json(self.counts, left_out, best_with_misses))
