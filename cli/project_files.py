"""Project file commands: new, info, the imports (official JSON, COCO, labelme, our PNGs) and the exports."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.common import EXIT_OK, CommandError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engine.placement_report import PlacementThresholds


def cmd_new(args: argparse.Namespace) -> int:
    from projects.database import Project

    with Project.create(args.project, name=args.name):
        pass
    print(f"created {args.project}")
    return EXIT_OK


def cmd_import_json(args: argparse.Namespace) -> int:
    from projects.official_json import read_official_json

    # Read every file before writing anything: one bad file imports nothing.
    return _add_imported(args.project, [(path, read_official_json(path)) for path in args.files])


def cmd_import_coco(args: argparse.Namespace) -> int:
    from projects.import_coco import read_coco

    imported = []
    for path in args.files:
        result = read_coco(
            path,
            caption_template=args.caption_template,
            captions_file=args.captions,
            categories=set(args.categories) if args.categories else None,
            min_area=args.min_area,
            max_instances=args.max_instances,
            max_scenes=args.max_scenes,
        )
        for warning in result.warnings:
            print(f"warning: {path}: {warning}", file=sys.stderr)
        imported += [(path, scene) for scene in result.scenes]
    return _add_imported(args.project, imported)


def cmd_import_labelme(args: argparse.Namespace) -> int:
    from projects.import_labelme import read_labelme

    return _add_imported(args.project, [(path, read_labelme(path, caption=args.caption)) for path in args.files])


def cmd_import_png(args: argparse.Namespace) -> int:
    from projects.import_png import scene_from_png
    from projects.official_json import ImportedLayout

    return _add_imported(args.project, [(path, ImportedLayout(scene_from_png(path))) for path in args.files])


def _add_imported(project_path: Path, imported: list[tuple[Path, Any]]) -> int:
    """Add every read scene in one transaction (all or nothing), printing warnings as they come."""
    from projects.database import Project
    from projects.scenes import add_scene

    with Project.open(project_path) as project, project.write() as session:
        for path, item in imported:
            scene = add_scene(session, item.layout)
            session.flush()
            for warning in item.warnings:
                print(f"warning: {path}: {warning}", file=sys.stderr)
            print(f"imported {path} as scene {scene.id} {scene.name!r} ({len(item.layout.instances)} instances)")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from projects.database import Project
    from projects.export import ExportOptions, SplitRatios, export_project

    options = ExportOptions(
        format=args.format,
        which="all" if args.all_renders else "latest",
        scenes=tuple(args.scenes) if args.scenes else None,
        template=args.template,
        sidecar=args.sidecar,
        annotated=args.annotated,
        zip=args.zip,
        segments=args.segments,
        include=args.include,
        labels=args.labels,
        split=None if args.split is None else SplitRatios.parse(args.split),
        split_seed=args.split_seed,
    )

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rexporting {done}/{total}")
        sys.stderr.flush()

    with Project.open(args.project) as project:
        report = export_project(project, args.out, options, progress=progress)
    sys.stderr.write("\n")
    extra = f", {report.annotations} annotations" if args.format != "images" else ""
    print(f"exported {report.images} image(s){extra} to {report.out} (include {report.include})")
    if report.splits:
        print("splits: " + ", ".join(f"{name} {images}" for name, images in report.splits))
    for note in report.notes():
        print(f"note: {note}")
    return EXIT_OK


def cmd_export_json(args: argparse.Namespace) -> int:
    from projects.database import Project
    from projects.official_json import write_official_json
    from projects.scenes import find_scene, scene_layout

    with Project.open(args.project) as project, project.read() as session:
        layout = scene_layout(find_scene(session, args.scene))
    out = Path(args.out)
    if out.is_dir():
        raise CommandError(f"{out} is a folder; give a file name such as {out / 'scene.json'}")
    write_official_json(layout, out)
    print(f"wrote {out}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from projects import schema
    from projects.database import Project
    from projects.placement import placement_thresholds
    from projects.queue import status_counts
    from projects.scene_records import readable_settings
    from projects.scenes import get_settings, list_scenes, project_defaults

    with Project.open(args.project) as project, project.read() as session:
        settings = get_settings(session)
        defaults = project_defaults(session)
        placement = _latest_placement(session, placement_thresholds(session))
        scenes: list[dict[str, Any]] = []
        for stored in list_scenes(session):
            effective = readable_settings(stored.overrides).effective(defaults)
            scenes.append(
                {
                    "id": stored.id,
                    "name": stored.name,
                    "width": stored.width,
                    "height": stored.height,
                    "instances": len(stored.instances),
                    "kinds": dict(Counter(inst.kind for inst in stored.instances)),
                    "renders": len(stored.renders),
                    "model": effective.model_id,
                    "loras": [lora.to_dict() for lora in effective.loras],
                    "placement": placement.get(stored.id),
                }
            )
        info: dict[str, Any] = {
            "project": str(project.path),
            "name": settings.name,
            "schema": schema.head_revision(),
            "scenes": scenes,
            "instances": sum(s["instances"] for s in scenes),
            "queue": {status.value: count for status, count in status_counts(session).items()},
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['name']}  ({info['project']}, schema {info['schema']})")
    print(f"scenes: {len(scenes)}  instances: {info['instances']}")
    print("queue: " + ", ".join(f"{name} {count}" for name, count in info["queue"].items()))
    for scene in scenes:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(scene["kinds"].items()))
        size = f"{scene['width']}x{scene['height']}"
        loras = ", ".join(f"{lora['name']} {lora['weight']:g}" for lora in scene["loras"])
        look = f"  model {scene['model']}" + (f" + LoRAs {loras}" if loras else "")
        placed = scene["placement"] or "no renders"
        print(
            f"  {scene['id']:>4}  {scene['name'][:32]:<32}  {size:>9}  {scene['instances']:>2} instances"
            f"  {placed:<14}  {kinds}{look}"
        )
    return EXIT_OK


def _latest_placement(session: Session, thresholds: PlacementThresholds) -> dict[int, str]:
    """Per scene with renders: its latest render's placement, judged by the project's current thresholds
    ("all placed", "1 of 3 missed", or "not checked")."""
    from sqlalchemy import func, select

    from projects.models import Render
    from projects.placement import stored_report

    latest = select(func.max(Render.id)).group_by(Render.scene_id)
    rows = session.execute(select(Render.scene_id, Render.id, Render.placement).where(Render.id.in_(latest)))
    result = {}
    for scene_id, render_id, data in rows:
        report = stored_report(data, render_id)
        result[scene_id] = "not checked" if report is None else report.summary(thresholds)
    return result
