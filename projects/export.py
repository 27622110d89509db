"""Export rendered images, and datasets labelled from the layouts they were rendered from.

Formats (`ExportOptions.format`), each a folder or, with `zip`, one .zip holding the same files:

- `images`: `NAME.png` per render (+ `NAME.json` with `sidecar`).
- `coco`: `annotations.json` and `images/NAME.png`.
- `yolo`: `data.yaml`, `images/NAME.png`, `labels/NAME.txt`, `provenance.jsonl`; box labels, or
  polygon labels (the segment task) with `segments`.

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
from projects.export_datasets import CocoDataset, LabelCounts, YoloDataset
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
from projects.export_source import RenderData, load_render, select_renders

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
    "NothingToExportError",
    "export_project",
]

ExportFormat = Literal["images", "coco", "yolo"]
FORMATS: Final = ("images", "coco", "yolo")
WHICH: Final = ("latest", "all")


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
    selection = select_renders(project, options.which, options.scenes, options.render_ids)
    names = NameAllocator(options.template, selection.project_name)
    renders = selection.renders
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
    output = open_output(out, as_zip=options.zip)
    writer = _Writer(output, options, selection.project_name)
    try:
        for done, (ref, stem) in enumerate(zip(renders, stems, strict=True)):
            if should_cancel is not None and should_cancel():
                raise ExportCancelled(done, len(renders))
            writer.add(load_render(project, ref), stem)
            if progress is not None:
                progress(done + 1, len(renders))
        writer.finish(root="." if options.zip else str(out))
        output.commit()
    except BaseException:
        output.abort()
        raise
    return ExportReport(
        out=out,
        files=tuple(writer.files),
        images=len(renders),
        annotations=writer.counts.annotations,
        skipped_points=writer.counts.skipped_points,
        skipped_empty=writer.counts.skipped_empty,
        scenes_without_renders=selection.scenes_without_renders,
        reembedded=writer.reembedded,
        categories=tuple(writer.categories),
    )


def _check_options(options: ExportOptions) -> None:
    if options.format not in FORMATS:
        raise ExportError(f"unknown export format {options.format!r}; use one of {', '.join(FORMATS)}")
    if options.which not in WHICH:
        raise ExportError(f"unknown selection {options.which!r}; use one of {', '.join(WHICH)}")
    if options.segments and options.format != "yolo":
        raise ExportError("segments apply to the yolo format only (COCO always carries the masks)")
    check_template(options.template)


class _Writer:
    """Writes one image's files, and the dataset files at the end, through an output."""

    def __init__(self, output: ExportOutput, options: ExportOptions, project_name: str) -> None:
        self.output = output
        self.options = options
        self.files: list[str] = []
        self.reembedded = 0
        self.image_dir = "" if options.format == "images" else "images/"
        self.coco = CocoDataset(project_name) if options.format == "coco" else None
        self.yolo = YoloDataset(segments=options.segments) if options.format == "yolo" else None

    @property
    def counts(self) -> LabelCounts:
        dataset = self.coco or self.yolo
        return dataset.counts if dataset is not None else LabelCounts()

    @property
    def categories(self) -> list[str]:
        dataset = self.coco or self.yolo
        return dataset.categories.names if dataset is not None else []

    def write(self, relative: str, data: bytes) -> None:
        self.output.write(relative, data)
        self.files.append(relative)

    def add(self, render: RenderData, stem: str) -> None:
        image = prepare_png(render)
        self.reembedded += image.reembedded
        image_path = f"{self.image_dir}{stem}.png"
        self.write(image_path, image.png)
        if self.options.sidecar:
            self.write(f"{self.image_dir}{stem}.json", sidecar_json(render, f"{stem}.png"))
        if self.options.annotated:
            self.write(f"annotated/{stem}.png", annotated_png(image.png, render.request.instances))
        if self.coco is not None:
            self.coco.add(render, f"{stem}.png", image.width, image.height)
        if self.yolo is not None:
            label_path = f"labels/{stem}.txt"
            self.write(label_path, self.yolo.labels(render, image.width, image.height))
            self.yolo.record(render, image_path, label_path)

    def finish(self, root: str) -> None:
        if self.coco is not None:
            self.write("annotations.json", self.coco.to_json())
        if self.yolo is not None:
            self.write("provenance.jsonl", self.yolo.provenance_jsonl())
            self.write("data.yaml", self.yolo.data_yaml(root))
