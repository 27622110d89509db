"""Instance Studio: with no arguments, the GUI; with a subcommand, the same work headless.

Exit codes: 0 success, 1 the command failed (one line on stderr says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import logging.handlers
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.model_settings import ModelSettings

log = logging.getLogger("instance_studio")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A failure to report as one line and exit code 1."""


def data_dir() -> Path:
    """Where logs and settings live: INSTANCE_STUDIO_HOME, else the platform's user data folder."""
    override = os.environ.get("INSTANCE_STUDIO_HOME")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_data_dir("instance-studio", appauthor=False))


def configure_logging(verbose: bool) -> Path:
    """Log to a rotating file always, and to the console with --verbose. Returns the log file."""
    log_dir = data_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / "instance-studio.log"
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_instance_studio", False):
            root.removeHandler(handler)
            handler.close()
    file_handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [file_handler]
    if verbose:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handlers.append(console)
    for handler in handlers:
        handler._instance_studio = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # it narrates every plugin at INFO
    return log_file


# --- commands ---------------------------------------------------------------------------------


def cmd_gui(args: argparse.Namespace) -> int:
    if not has_display():
        # Qt would abort with a core dump; say what to do instead.
        raise CommandError("no display to open the window on; use a headless command (see --help)")
    from desktop.app import run

    project = None if args.project is None else args.project.expanduser().absolute()
    if project is not None and not project.exists():
        raise CommandError(f"no such project: {project}")
    return run(sys.argv[:1], data_dir(), project, model_settings_path())


def has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


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
    from projects.export import ExportOptions, export_project

    options = ExportOptions(
        format=args.format,
        which="all" if args.all_renders else "latest",
        scenes=tuple(args.scenes) if args.scenes else None,
        template=args.template,
        sidecar=args.sidecar,
        annotated=args.annotated,
        zip=args.zip,
        segments=args.segments,
    )

    def progress(done: int, total: int) -> None:
        sys.stderr.write(f"\rexporting {done}/{total}")
        sys.stderr.flush()

    with Project.open(args.project) as project:
        report = export_project(project, args.out, options, progress=progress)
    sys.stderr.write("\n")
    extra = f", {report.annotations} annotations" if args.format != "images" else ""
    print(f"exported {report.images} image(s){extra} to {report.out}")
    if report.skipped_points:
        print(f"note: {report.skipped_points} point instance(s) have no extent and got no label")
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
    from projects.queue import status_counts
    from projects.scenes import get_settings, list_scenes

    with Project.open(args.project) as project, project.read() as session:
        settings = get_settings(session)
        scenes: list[dict[str, Any]] = [
            {
                "id": scene.id,
                "name": scene.name,
                "width": scene.width,
                "height": scene.height,
                "instances": len(scene.instances),
                "kinds": dict(Counter(inst.kind for inst in scene.instances)),
                "renders": len(scene.renders),
            }
            for scene in list_scenes(session)
        ]
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
        print(f"  {scene['id']:>4}  {scene['name'][:32]:<32}  {size:>9}  {scene['instances']:>2} instances  {kinds}")
    return EXIT_OK


def models_dir() -> Path:
    return data_dir() / "models"


def demo_model_dir() -> Path:
    """The bundled demo model, unless INSTANCE_STUDIO_DEMO_MODEL points at another (one you trained)."""
    from engine.providers import DEMO_MODEL_DIR

    override = os.environ.get("INSTANCE_STUDIO_DEMO_MODEL")
    return Path(override) if override else DEMO_MODEL_DIR


def model_settings_path() -> Path:
    return data_dir() / "models.json"


def _load_model_settings() -> ModelSettings:
    from engine.model_settings import ModelSettings, ModelSettingsError

    try:
        return ModelSettings.load(model_settings_path(), missing_ok=True)
    except ModelSettingsError as exc:
        raise CommandError(str(exc)) from exc


def _check_models(settings: ModelSettings) -> list[tuple[str, str, bool]]:
    """(part, how it stands, fine) for each part of the model settings; reads hashes and layouts, not weights."""
    from engine.model_check import check_model_settings

    rows: list[tuple[str, str, bool]] = []
    for check in check_model_settings(settings):
        # One line per part, so scripts can grep it: for a problem, what to do follows what is wrong.
        advice = [] if check.ok else [text for text in (check.hint, check.command and f"`{check.command}`") if text]
        rows.append((check.part, "; ".join([check.message, *advice]), check.ok))
    return rows


def cmd_models_list(args: argparse.Namespace) -> int:
    settings = _load_model_settings()
    print(f"settings: {model_settings_path()}")
    for what, state, _fine in _check_models(settings):
        print(f"  {what:<8} {state}")
    adapters = sorted(models_dir().glob("*.adapter.safetensors")) if models_dir().is_dir() else []
    if adapters:
        print(f"converted adapters in {models_dir()}:")
        for adapter in adapters:
            print(f"  {adapter.name}")
    return EXIT_OK


def cmd_models_verify(args: argparse.Namespace) -> int:
    rows = _check_models(_load_model_settings())
    for what, state, fine in rows:
        print(f"{'ok' if fine else 'PROBLEM':<8} {what:<8} {state}")
    return EXIT_OK if all(fine for _what, _state, fine in rows) else EXIT_FAILED


def cmd_models_set(args: argparse.Namespace) -> int:
    import dataclasses

    from engine.model_settings import ModelSettingsError

    settings = _load_model_settings()
    changes = {
        name: getattr(args, name) for name in ("sd15", "adapter", "device", "dtype") if getattr(args, name) is not None
    }
    if not changes:
        raise CommandError("nothing to set: give --sd15, --adapter, --device or --dtype")
    for name in ("sd15", "adapter"):
        if name in changes:
            changes[name] = changes[name].expanduser().absolute() if str(changes[name]) else None
    try:
        settings = dataclasses.replace(settings, **changes)
        model_settings_path().parent.mkdir(parents=True, exist_ok=True)
        settings.save(model_settings_path())
    except (ValueError, ModelSettingsError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"saved {model_settings_path()}")
    return cmd_models_verify(args)


def cmd_models_convert(args: argparse.Namespace) -> int:
    """Convert the official InstanceDiffusion .pth once into a safetensors adapter with a manifest."""
    from engine.checkpoint import convert_official_checkpoint, manifest_path
    from engine.models.builder import InstanceUNetConfig
    from engine.weights_io import WeightFileError

    out: Path = args.out or models_dir() / f"{args.path.stem}.adapter.safetensors"
    if out.exists() and not args.force:
        raise CommandError(f"{out} exists; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"reading {args.path} (weights only; no code in it is run)...", flush=True)
    try:
        manifest = convert_official_checkpoint(args.path, out, InstanceUNetConfig())
    except WeightFileError as exc:
        raise CommandError(str(exc)) from exc
    print(f"wrote {out}: {manifest.tensors} tensors, {manifest.parameters:,} parameters")
    print(f"manifest {manifest_path(out)} (adapter sha256 {manifest.adapter_sha256[:16]}...)")
    settings = _load_model_settings()
    if settings.adapter is None:
        import dataclasses

        dataclasses.replace(settings, adapter=out.absolute()).save(model_settings_path())
        print(f"set as the adapter in {model_settings_path()}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    """Queue the chosen scenes (if any), then render every pending job with a progress bar."""
    import signal

    from engine.providers import settings_provider
    from engine.runner import Runner
    from projects.database import Project
    from projects.models import JobStatus
    from projects.queue import status_counts
    from projects.scenes import find_scene, list_scenes, queue_scene, random_seed
    from rendering.outcomes import Outcome
    from rendering.queue_loop import QueueLoop  # imports torch

    with Project.open(args.project) as project:
        if project.report.requeued_jobs:
            print(f"{len(project.report.requeued_jobs)} job(s) interrupted last time are back in the queue")
        with project.write() as session:
            scenes = list_scenes(session) if args.all else [find_scene(session, ref) for ref in args.scenes or []]
            for scene in scenes:
                if args.variations:
                    for _ in range(args.variations):
                        queue_scene(session, scene, seed=random_seed())
                else:
                    queue_scene(session, scene)
        with project.read() as session:
            pending = status_counts(session)[JobStatus.PENDING]
        if pending == 0:
            print("nothing to render: the queue is empty (give --scenes or --all)")
            return EXIT_OK
        progress = ConsoleProgress(pending)
        provider = settings_provider(_load_model_settings(), demo_dir=demo_model_dir())
        loop = QueueLoop(project, Runner(provider), progress)

        def on_interrupt(_signal: int, _frame: object) -> None:
            loop.stop()
            progress.interrupted()

        previous = signal.signal(signal.SIGINT, on_interrupt)
        try:
            results = loop.run_until_empty()
        finally:
            signal.signal(signal.SIGINT, previous)
    counts = {outcome: sum(1 for r in results if r.outcome is outcome) for outcome in Outcome}
    summary = ", ".join(f"{n} {outcome.value}" for outcome, n in counts.items() if n)
    print(f"\nsummary: {summary or 'nothing rendered'} in {sum(r.seconds for r in results):.1f} s")
    for result in results:
        if result.error:
            print(f"  job {result.job.id}: {result.error}")
    if loop.stopping:
        print("interrupted: the running job is back in the queue; run the command again to continue")
        return 130
    return EXIT_FAILED if counts[Outcome.FAILED] or counts[Outcome.OUT_OF_MEMORY] else EXIT_OK


class ConsoleProgress:
    """One progress bar per job and the overall count, redrawn in place on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.job_label = ""
        self.started = 0.0

    def job_started(self, job: object) -> None:
        import time

        self.started = time.perf_counter()
        self.job_label = f"job {getattr(job, 'id', '?')}"

    def job_progress(self, job_id: int, step: int, total: int, preview: object) -> None:
        import time

        width = 24
        filled = int(width * step / max(total, 1))
        elapsed = time.perf_counter() - self.started
        eta = elapsed / step * (total - step) if step else 0.0
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(
            f"\r[{self.done + 1}/{self.total}] {self.job_label} [{bar}] {step}/{total} steps, ETA {eta:4.1f}s "
        )
        sys.stderr.flush()

    def job_ended(self, result: object) -> None:
        self.done += 1
        outcome = getattr(result, "outcome", "")
        seconds = getattr(result, "seconds", 0.0)
        sys.stderr.write(f"\r[{self.done}/{self.total}] {self.job_label}: {outcome} in {seconds:.1f}s{' ' * 40}\n")
        sys.stderr.flush()

    def interrupted(self) -> None:
        sys.stderr.write("\nstopping after this step (Ctrl-C)...\n")
        sys.stderr.flush()


# --- parsing ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="instance-studio",
        description="Compose layout-controlled scenes and render them with InstanceDiffusion.",
        epilog="With no command, the GUI opens. Exit codes: 0 success, 1 failure, 2 bad usage.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log to the console too")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    gui = commands.add_parser("gui", help="open the GUI (the default)")
    gui.add_argument("project", nargs="?", type=Path, help="a project to open")
    gui.set_defaults(func=cmd_gui)

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
    export.add_argument("--template", default="{project}_{scene}_{seed}_{index}", help="file name template")
    export.add_argument("--sidecar", action="store_true", help="a JSON layout beside each image")
    export.add_argument("--annotated", action="store_true", help="also previews with the layout drawn over")
    export.add_argument("--segments", action="store_true", help="YOLO: polygon (segmentation) labels")
    export.add_argument("--zip", action="store_true", help="write one zip file")
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
    setter.add_argument(
        "--sd15", type=Path, help="SD1.5: a diffusers folder, HF cache entry or single file ('' unsets)"
    )
    setter.add_argument("--adapter", type=Path, help="a converted adapter (.safetensors) ('' unsets)")
    setter.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps")
    setter.add_argument("--dtype", help="auto, fp16, bf16 or fp32")
    setter.set_defaults(func=cmd_models_set)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args.func, args.project = cmd_gui, None
    try:
        log_file = configure_logging(args.verbose)
    except OSError as exc:
        print(f"error: cannot write the log in {data_dir()}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    log.debug("command %s, log %s", args.command or "gui", log_file)

    from engine.request import RequestValidationError
    from projects.errors import ProjectError

    try:
        return int(args.func(args))
    except (CommandError, ProjectError, RequestValidationError) as exc:
        log.warning("%s failed: %s", args.command, exc)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`| head`); say nothing more on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except OSError as exc:
        log.exception("%s failed", args.command)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
