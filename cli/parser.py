"""The command line: every subcommand, its arguments and the function that runs it (`args.func`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from cli.models import cmd_models_convert, cmd_models_list, cmd_models_set, cmd_models_verify
from cli.project_files import (
    cmd_export,
    cmd_export_json,
    cmd_import_coco,
    cmd_import_json,
    cmd_import_labelme,
    cmd_import_png,
    cmd_info,
    cmd_new,
)
from cli.render import cmd_render

Command = Callable[[argparse.Namespace], int]


def build_parser(gui_command: Command) -> argparse.ArgumentParser:
    """The parser; `gui_command` opens the window (main.py passes it: cli never imports the GUI)."""
    parser = argparse.ArgumentParser(
        prog="instance-studio",
        description="Compose layout-controlled scenes and render them with InstanceDiffusion.",
        epilog="With no command, the GUI opens. Exit codes: 0 success, 1 failure, 2 bad usage.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to the console too")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = commands.add_parser("gui", help="open the GUI (the default)")
    gui.add_argument("project", nargs="?", type=Path, help="a project to open")
    gui.set_defaults(func=gui_command)

    new = commands.add_parser("new", help="create an empty project file")
    new.add_argument("project", type=Path, help="the file to create, e.g. shapes.instproj")
    new.add_argument("--name", help="the project's name (default: the file name)")
    new.set_defaults(func=cmd_new)

    imp = commands.add_parser("import-json", help="add scenes from official InstanceDiffusion JSON files")
    imp.add_argument("project", type=Path)
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imp.set_defaults(func=cmd_import_json)

    coco = commands.add_parser("import-coco", help="add one scene per image of COCO annotation files")
    coco.add_argument("project", type=Path)
    coco.add_argument("files", nargs="+", type=Path, metavar="FILE", help="instances_*.json")
    coco.add_argument("--captions", type=Path, help="a COCO captions file for the scene captions")
    coco.add_argument("--caption-template", default="a photo of {categories}")
    coco.add_argument("--categories", nargs="+", metavar="NAME", help="keep only these categories")
    coco.add_argument("--min-area", type=float, default=0.0, help="skip smaller objects (pixels)")
    coco.add_argument("--max-instances", type=int, default=30, help="keep the largest N per scene")
    coco.add_argument("--max-scenes", type=int, help="at most N scenes per file")
    coco.set_defaults(func=cmd_import_coco)

    labelme = commands.add_parser("import-labelme", help="add one scene per labelme JSON file")
    labelme.add_argument("project", type=Path)
    labelme.add_argument("files", nargs="+", type=Path, metavar="FILE")
    labelme.add_argument("--caption", help="the scenes' caption (default: from their labels)")
    labelme.set_defaults(func=cmd_import_labelme)

    png = commands.add_parser("import-png", help="recreate scenes from images exported by Instance Studio")
    png.add_argument("project", type=Path)
    png.add_argument("files", nargs="+", type=Path, metavar="FILE")
    png.set_defaults(func=cmd_import_png)

    export = commands.add_parser("export", help="export renders as images, a COCO or a YOLO dataset")
    export.add_argument("project", type=Path)
    export.add_argument("out", type=Path, help="a new (or empty) folder, or the .zip to write with --zip")
    export.add_argument("--format", choices=("images", "coco", "yolo"), default="images")
    export.add_argument("--scenes", nargs="+", metavar="SCENE", help="only these scenes (ids or names)")
    export.add_argument("--all-renders", action="store_true", help="every render, not only the latest per scene")
    export.add_argument(
        "--template",
        default="{project}_{scene}_{seed}_{index}",
        help="file name template; {index} is the render's number in its scene, the same in every export",
    )
    export.add_argument("--sidecar", action="store_true", help="a JSON layout beside each image")
    export.add_argument("--annotated", action="store_true", help="also previews with the layout drawn over")
    export.add_argument("--segments", action="store_true", help="YOLO: polygon (segmentation) labels")
    export.add_argument("--zip", action="store_true", help="write one zip file")
    export.add_argument(
        "--include",
        choices=("placed", "best", "everything"),
        help="placed: only renders whose every instance passed its placement check (the default for coco and "
        "yolo); best: the best checked render per scene; everything: no filter (the default for images)",
    )
    export.add_argument(
        "--labels",
        choices=("drawn", "found"),
        default="drawn",
        help="dataset labels from the layout as drawn (default) or from what the placement check found",
    )
    export.add_argument(
        "--split",
        metavar="TRAIN,VAL,TEST",
        help="split the dataset by scene in these ratios, e.g. 0.8,0.1,0.1 or 0.8,0.2 (seeded by --split-seed); "
        "refused if a split would be empty. Without it YOLO's train and val are the same images",
    )
    export.add_argument("--split-seed", type=int, default=0, help="the seed that shuffles scenes into splits")
    export.set_defaults(func=cmd_export)

    exp = commands.add_parser("export-json", help="write one scene as official InstanceDiffusion JSON")
    exp.add_argument("project", type=Path)
    exp.add_argument("scene", help="the scene's id or exact name")
    exp.add_argument("out", type=Path, help="the JSON file to write")
    exp.set_defaults(func=cmd_export_json)

    render = commands.add_parser(
        "render", help="render queued jobs, or the given scenes, without a window (Ctrl-C stops cleanly)"
    )
    render.add_argument("project", type=Path)
    render.add_argument("--scenes", nargs="+", metavar="SCENE", help="queue these scenes (ids or exact names)")
    render.add_argument("--all", action="store_true", help="queue every scene")
    render.add_argument("--variations", type=int, metavar="N", help="N renders per scene, each with a new seed")
    render.add_argument(
        "--retry-failed",
        action="store_true",
        help="queue the failed jobs again (of the --scenes given, else all) instead of new renders",
    )
    render.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help="write a JSON list with one object per finished job: scene, job, seconds, reused_instances, instances",
    )
    render.add_argument(
        "--until-placed",
        type=int,
        metavar="N",
        help="check each render's placement; when an instance missed, try the next seed, at most N seeds per scene",
    )
    render.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="render on a Ray cluster: 'auto' starts a local Ray on this machine, else the cluster's address "
        "(needs the cluster extra: pip install '.[cluster]')",
    )
    render.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --cluster: N workers (default: one per GPU of the cluster, else one per node)",
    )
    render.set_defaults(func=cmd_render)

    info = commands.add_parser("info", help="list scenes, instances and queue counts")
    info.add_argument("project", type=Path)
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=cmd_info)

    models = commands.add_parser("models", help="list, verify and convert model files")
    model_commands = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    convert = model_commands.add_parser(
        "convert", help="convert the official instancediffusion_sd15.pth to an adapter"
    )
    convert.add_argument("path", type=Path, help="the official checkpoint (.pth)")
    convert.add_argument("--out", type=Path, help="adapter file to write (default: in the user data folder)")
    convert.add_argument("--force", action="store_true", help="replace an existing adapter file")
    convert.set_defaults(func=cmd_models_convert)
    listing = model_commands.add_parser("list", help="show the configured model files and converted adapters")
    listing.set_defaults(func=cmd_models_list)
    verify = model_commands.add_parser("verify", help="check the configured model files (exit 1 on a problem)")
    verify.set_defaults(func=cmd_models_verify)
    setter = model_commands.add_parser("set", help="configure model files, device and dtype")
    # Paths are taken as text, so that '' unsets (argparse's Path('') would be the current folder).
    setter.add_argument("--sd15", help="SD1.5: a diffusers folder, HF cache entry or single file ('' unsets)")
    setter.add_argument("--adapter", help="a converted adapter (.safetensors) ('' unsets)")
    setter.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    setter.add_argument("--dtype", help="auto, fp16, bf16 or fp32")
    setter.add_argument(
        "--base",
        action="append",
        metavar="NAME=PATH",
        help="a fine-tuned SD1.5 base (folder or single file) a scene can pick by NAME; NAME= removes it",
    )
    setter.add_argument(
        "--lora", action="append", metavar="NAME=PATH", help="a LoRA file scenes can apply by NAME; NAME= removes it"
    )
    setter.add_argument("--low-memory", choices=("on", "off"), help="offload and tile on the GPU from the start")
    setter.add_argument(
        "--checker",
        metavar="FOLDER",
        help="an OWLv2 or Grounding DINO folder that checks renders of real models ('' unsets)",
    )
    setter.set_defaults(func=cmd_models_set)
    return parser
