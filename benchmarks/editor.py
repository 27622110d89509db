"""How the editor copes with big projects and busy scenes, measured side by side with a trivial reference.

    .venv/bin/python benchmarks/editor.py [--scenes 1000] [--instances 30] [--redraws 30]

1. Opening: a project of N scenes x M instances (a third of them masks) vs a project of one empty scene,
   from `open` to the scene list shown and the first scene on the canvas.
2. Redrawing: the canvas painting a scene of M instances with masks vs an empty scene (same canvas size).
Prints the times and their ratios. Runs offscreen.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_project(path: Path, scenes: int, instances: int) -> None:
    import numpy as np

    from engine.request import InstanceKind, InstanceSpec, MaskRLE
    from projects.database import Project
    from projects.scenes import SceneLayout, add_scene

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512]
    with Project.create(path) as project, project.write() as session:
        for s in range(scenes):
            specs = []
            for k in range(instances):
                x, y = rng.uniform(0.1, 0.8, size=2)
                if k % 3 == 0:
                    cx, cy, r = x * 512, y * 512, rng.uniform(20, 60)
                    bitmap = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
                    specs.append(InstanceSpec(f"blob {k}", InstanceKind.MASK, mask=MaskRLE.from_bitmap(bitmap)))
                elif k % 3 == 1:
                    specs.append(InstanceSpec(f"box {k}", InstanceKind.BOX, box=(x, y, x + 0.1, y + 0.1)))
                else:
                    specs.append(InstanceSpec(f"dot {k}", InstanceKind.POINT, point=(x, y)))
            add_scene(session, SceneLayout(f"scene {s}", "a scene", 512, 512, tuple(specs), seed=s))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=30)
    parser.add_argument("--redraws", type=int, default=30)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow
    from desktop.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app, "dark")
    work = Path(tempfile.mkdtemp(prefix="instance-studio-bench-"))
    big, small = work / "big.instproj", work / "small.instproj"
    began = time.perf_counter()
    build_project(big, args.scenes, args.instances)
    build_project(small, 1, 0)
    print(f"built {args.scenes} scenes x {args.instances} instances in {time.perf_counter() - began:.1f} s")

    def wait_for(condition: object, timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        while not condition():  # type: ignore[operator]
            if time.perf_counter() > deadline:
                raise TimeoutError("the window did not get there")
            loop = QEventLoop()
            QTimer.singleShot(2, loop.quit)
            loop.exec()

    def open_time(path: Path) -> tuple[float, MainWindow]:
        window = MainWindow(QSettings(str(work / "gui.ini"), QSettings.Format.IniFormat), work)
        window.resize(1400, 900)
        window.show()
        start = time.perf_counter()
        window.open_project(path)
        wait_for(lambda: window.editor is not None)
        return time.perf_counter() - start, window

    def redraw_time(window: MainWindow) -> float:
        image = QImage(window.canvas.viewport().size(), QImage.Format.Format_ARGB32_Premultiplied)
        times = []
        for _ in range(args.redraws):
            painter = QPainter(image)
            start = time.perf_counter()
            window.canvas.render(painter)
            painter.end()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    small_open, small_window = open_time(small)
    small_redraw = redraw_time(small_window)
    small_window.close()
    big_open, big_window = open_time(big)
    scene = big_window.editor.scene
    big_redraw = redraw_time(big_window)
    big_window.close()

    print(f"\n{'':<44}{'ours':>10}{'reference':>12}{'ratio':>8}")
    print(
        f"{f'open {args.scenes} scenes x {args.instances} inst. (vs 1 empty)':<44}"
        f"{big_open * 1000:>8.0f}ms{small_open * 1000:>10.0f}ms{big_open / small_open:>8.1f}"
    )
    print(
        f"{f'redraw a {len(scene.instances)}-instance scene (vs empty)':<44}"
        f"{big_redraw * 1000:>8.1f}ms{small_redraw * 1000:>10.1f}ms{big_redraw / small_redraw:>8.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
