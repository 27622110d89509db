"""Live preview during a drag: one instance of a 4-instance demo scene dragged across the canvas with real
mouse events, with Live on, in the real window with the real render thread.

    .venv/bin/python benchmarks/live_drag.py [--seconds 5] [--model DIR] [--steps N] [--screenshot PNG]

The drag is a series of segments: the mouse moves continuously (a move every ~16 ms) for a while, then holds
still until the preview of exactly that geometry is shown (or a timeout), then moves on; the button is held
throughout. Prints:
- previews shown per second of dragging (aim >= 3);
- latency from the last mouse move of each hold to the preview of that exact geometry (aim <= 0.6 s median);
- the GUI event loop's stalls: gaps between the ticks of a 5 ms timer on the GUI thread (aim <= 50 ms at the
  95th percentile).
The model is the bundled demo model (what a new user sees) unless --model names another demo model folder.
Exits 1 when no preview arrived or the last one does not match the final geometry. Runs offscreen.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CAPTIONS = ("a red circle", "a blue square", "a green triangle", "a yellow star")
MOVE_EVERY_S = 0.016  # a mouse move per frame at 60 Hz
MOVE_SEGMENT_S = 0.4  # moving continuously, then holding still
HOLD_TIMEOUT_S = 4.0
POLL_S = 0.01  # how often the script looks (the figures are taken in the slots, not by polling)
TICK_MS = 5


def build_project(path: Path) -> None:
    from engine.request import InstanceKind, InstanceSpec
    from projects.database import Project
    from projects.scenes import SceneLayout, add_scene

    boxes = ((0.05, 0.05, 0.3, 0.3), (0.6, 0.1, 0.9, 0.4), (0.1, 0.6, 0.4, 0.9), (0.6, 0.6, 0.9, 0.9))
    specs = tuple(InstanceSpec(c, InstanceKind.BOX, box=b) for c, b in zip(CAPTIONS, boxes, strict=True))
    with Project.create(path) as project, project.write() as session:
        caption = "a red circle, a blue square, a green triangle and a yellow star on a grey background"
        add_scene(session, SceneLayout("drag", caption, 512, 512, specs, seed=7))


@dataclass
class Figures:
    shown_at: list[float] = field(default_factory=list)  # when each preview was shown
    latencies: list[float] = field(default_factory=list)
    holds_timed_out: int = 0
    gaps_ms: list[float] = field(default_factory=list)
    moves: int = 0


def path_point(t: float) -> tuple[float, float]:
    """Where the dragged instance's centre goes at `t` seconds: back and forth across the canvas."""
    x = 0.5 + 0.3 * math.sin(2 * math.pi * t / 4.0)
    y = 0.5 + 0.25 * math.sin(2 * math.pi * t / 2.7)
    return x, y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the mouse drags")
    parser.add_argument("--model", type=Path, default=None, help="a demo model folder (default: the bundled one)")
    parser.add_argument("--steps", type=int, default=None, help="preview steps (default: the model's default)")
    parser.add_argument(
        "--settle-ms",
        type=int,
        default=None,
        help="still this long before an edit cancels the preview in flight (default: the app's; 0: at every move)",
    )
    parser.add_argument("--screenshot", type=Path, default=None, help="save the window, with the last preview, here")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QElapsedTimer, QEventLoop, QPoint, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow
    from desktop.render_thread import LivePreview
    from desktop.theme import apply_theme
    from rendering.demo_model import demo_model_dir

    model = args.model or demo_model_dir()
    if not (model / "config.json").is_file():
        print(f"no demo model in {model}")
        return 1
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_theme(app, "dark")
    work = Path(tempfile.mkdtemp(prefix="instance-studio-live-"))
    build_project(work / "drag.instproj")

    def pump(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(max(0, round(seconds * 1000)), loop.quit)
        loop.exec()

    def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while not condition():
            if time.perf_counter() > deadline:
                return False
            pump(POLL_S)
        return True

    window = MainWindow(QSettings(str(work / "gui.ini"), QSettings.Format.IniFormat), work)
    window.resize(1400, 900)
    window.show()
    window.queue.demo_model_dir = model
    window.open_project(work / "drag.instproj")
    if not wait_for(lambda: window.editor is not None, 60):
        print("the project did not open")
        return 1
    window.canvas.fit()
    live, canvas, editor = window.live, window.canvas, window.editor
    assert editor is not None
    if args.steps is not None:
        window.commands.live_steps.setValue(args.steps)
    if args.settle_ms is not None:
        live.set_settle_ms(args.settle_ms)
    figures = Figures()

    def current_instances() -> tuple[object, ...]:
        return tuple(inst.spec for inst in editor.scene.instances)

    def matches_now() -> bool:
        return live.shown is not None and live.shown.request.instances == current_instances()

    def shown(preview: LivePreview) -> None:  # connected after the controller's slot: it has decided by now
        if live.shown is preview:
            figures.shown_at.append(time.perf_counter())

    window.queue.previewReady.connect(shown)
    began = time.perf_counter()
    window.commands.live.setChecked(True)
    if not wait_for(matches_now, 300):
        print("no preview arrived (is the model loading?)")
        window.close()
        return 1
    first = time.perf_counter() - began
    quality = live.shown.request if live.shown is not None else None
    assert quality is not None

    # The stall meter: a 5 ms timer on the GUI thread; a late tick means the event loop was busy.
    ticks = QElapsedTimer()
    last_tick = [0.0]

    def tick() -> None:
        now = ticks.nsecsElapsed() / 1e6
        if last_tick[0]:
            figures.gaps_ms.append(now - last_tick[0])
        last_tick[0] = now

    meter = QTimer(interval=TICK_MS)
    meter.setTimerType(Qt.TimerType.PreciseTimer)
    meter.timeout.connect(tick)

    viewport = canvas.viewport()
    box = editor.scene.instances[0].spec.box
    assert box is not None
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    offset = (path_point(0)[0] - centre[0], path_point(0)[1] - centre[1])

    def at(x: float, y: float) -> QPoint:
        return canvas.map_normalised(x - offset[0], y - offset[1])

    figures.shown_at.clear()
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*path_point(0)))
    ticks.start()
    meter.start()
    drag_start = time.perf_counter()
    t = 0.0
    while time.perf_counter() - drag_start < args.seconds:
        segment_end = time.perf_counter() + MOVE_SEGMENT_S
        while time.perf_counter() < segment_end:
            t += MOVE_EVERY_S
            QTest.mouseMove(viewport, at(*path_point(t)))
            figures.moves += 1
            pump(MOVE_EVERY_S)
        last_move = time.perf_counter()
        if wait_for(matches_now, HOLD_TIMEOUT_S):
            figures.latencies.append(max(0.0, figures.shown_at[-1] - last_move) if figures.shown_at else 0.0)
        else:
            figures.holds_timed_out += 1
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(*path_point(t)))
    dragged = time.perf_counter() - drag_start
    meter.stop()
    final_ok = wait_for(matches_now, 60)
    if args.screenshot is not None:
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(args.screenshot))

    shown_count = len([s for s in figures.shown_at if s <= drag_start + dragged])
    gaps = sorted(figures.gaps_ms)
    p95 = gaps[min(len(gaps) - 1, int(0.95 * len(gaps)))] if gaps else float("nan")
    median_latency = statistics.median(figures.latencies) if figures.latencies else float("nan")
    print(
        f"live drag: {len(CAPTIONS)}-instance 512x512 scene, model {model}, preview {quality.steps} steps "
        f"{quality.scheduler.value}, settle {live.settle_ms} ms; first preview (model load) {first:.1f} s"
    )
    print(f"dragged {dragged:.1f} s: {figures.moves} mouse moves, {len(figures.latencies)} holds")
    print(f"previews shown per second:                {shown_count / dragged:6.2f}   (aim >= 3)")
    print(
        f"latency, last move -> preview of it:      {median_latency:6.2f} s median, "
        f"max {max(figures.latencies, default=float('nan')):.2f} s, {figures.holds_timed_out} holds timed out"
        "   (aim <= 0.6 s median)"
    )
    print(
        f"GUI event loop stall (5 ms ticks' gaps):  {p95:6.1f} ms at the 95th percentile, longest {gaps[-1] if gaps else 0:.1f} ms"
        "   (aim <= 50 ms at p95)"
    )
    print(f"last preview matches the final geometry:  {'yes' if final_ok else 'NO'}")
    window.close()
    return 0 if final_ok else 1  # final_ok: a preview arrived, of the final geometry


if __name__ == "__main__":
    sys.exit(main())
