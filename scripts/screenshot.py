"""Save a screenshot of the main window editing the official `demo_cat_dog_robin` scene.

    .venv/bin/python scripts/screenshot.py [--out docs/screenshot.png] [--theme dark|light]

Runs offscreen (no display needed): it imports a few official demo scenes into a throwaway project,
opens the window on the cat-dog-robin scene, selects an instance so the handles show, and grabs it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMOS = ("demo_cat_dog_robin", "demo_corgi_kitchen", "demo_teddy_bear_castle", "demo_eagle_left", "demo_palm_point")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    parser.add_argument("--theme", choices=("dark", "light"), default="dark")
    parser.add_argument("--size", default="1440x900")
    parser.add_argument("--project", type=Path, help="open this project instead (a copy is used)")
    parser.add_argument("--scene", help="with --project: the scene to show (by name)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow
    from desktop.theme import apply_theme
    from projects.database import Project
    from projects.official_json import read_official_json
    from projects.scenes import add_scene
    from resources import resource_path

    app = QApplication(sys.argv[:1])
    apply_theme(app, args.theme)
    work = Path(tempfile.mkdtemp(prefix="instance-studio-shot-"))
    if args.project is not None:
        import shutil

        project = work / args.project.name
        shutil.copyfile(args.project, project)
    else:
        project = work / "Official demos.instproj"
        with Project.create(project, name="Official demos") as opened, opened.write() as session:
            for name in DEMOS:
                add_scene(session, read_official_json(resource_path("official-demos", f"{name}.json")).layout)

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    settings = QSettings(str(work / "gui.ini"), QSettings.Format.IniFormat)
    window = MainWindow(settings, work)
    width, height = (int(v) for v in args.size.split("x"))
    window.resize(width, height)
    window.show()
    window.open_project(project)
    for _ in range(100):
        wait(50)
        if window.editor is not None:
            break
    if args.scene:
        wanted = next(s.scene_id for s in window.scene_list.model.scenes if s.name == args.scene)
        window.scene_list.select_scene(wanted)
        for _ in range(100):
            wait(50)
            if window.editor.scene.scene_id == wanted and window.history.list.count():
                break
    scene = window.editor.scene
    window.editor.set_selection([scene.instances[0].uid])
    window.canvas.fit()
    wait(600)  # the tokenizer for the pre-flight check loads in the background
    window.resize(width, height)
    wait(200)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.out)):
        print(f"error: could not write {args.out}", file=sys.stderr)
        return 1
    window.close()
    print(f"saved {args.out} ({scene.name}, {len(scene.instances)} instances)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
