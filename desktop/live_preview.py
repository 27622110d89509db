"""Live preview: while "Live" is on, every edit of the scene on the canvas is rendered again in the
background at preview quality and shown under its instances as soon as it is ready.

The controller follows the current scene editor's document (drags, resizes, vertex drags, nudges and a
caption typed in place all emit `instanceChanged` as they happen), coalesces a burst of signals into one
request per event-loop turn, and hands it to the render thread through `QueueControl.request_preview`,
numbered with a rising token. Only the newest token's image is shown: an older one that still arrives is
out of date.

While a preview renders and the mouse keeps moving, a new request would cancel it at every move (60 a
second) and nothing would ever be shown until the drag stops. So an edit made while a preview is in flight
waits until that preview arrives (then the newest geometry goes at once) or until the scene has been still
for `SETTLE_MS` (then it goes and cancels the out-of-date one): the image follows a continuous drag at the
rate previews render, and a drag that stops costs at most `SETTLE_MS` more. The render thread does all engine work (`rendering.live_preview`); nothing here waits for it
and nothing of a preview is written to the project. "Keep this" queues the scene as a normal render job.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from desktop.canvas.view import CanvasView
from desktop.editor.connections import Connections
from desktop.editor.scene_editor import SceneEditor
from desktop.queue_control import QueueControl
from desktop.render_thread import LivePreview
from desktop.store import problems_in_words
from engine.validation import RequestValidationError
from projects.scene_data import scene_request
from rendering.live_preview import (
    MAX_PREVIEW_STEPS,
    PreviewQuality,
    at_preview_quality,
    default_quality,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from engine.request import RenderRequest
    from projects.scene_settings import ProjectDefaults

LIVE_KEY = "livePreview"  # QSettings: Live on or off
STEPS_KEY = "livePreviewSteps"  # QSettings: JSON {model id: preview steps} the user chose
SETTLE_MS = 60  # still this long, an edit cancels the preview in flight (a 60 Hz drag moves every ~16 ms)


class LivePreviewControl(QObject):
    statusChanged = Signal(str)  # "Live preview · 0.4 s · 3 of 4 instances reused", why none, or "" when off
    stepsChanged = Signal(int)  # the preview steps of the current scene's model

    def __init__(
        self,
        canvas: CanvasView,
        queue: QueueControl,
        settings: QSettings,
        defaults: Callable[[], ProjectDefaults | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.queue = queue
        self.settings = settings
        self._defaults = defaults
        self._editor: SceneEditor | None = None
        self._links = Connections()
        self._enabled = False
        self._token = 0  # the newest request's; a preview of any other is out of date
        self._submitted = False  # a request is out for `_token` and its preview may still be shown
        self._in_flight = False  # the render thread has `_token` and has not answered yet
        self.shown: LivePreview | None = None  # the preview on the canvas
        self.submits = 0  # requests handed to the render thread (for tests and the benchmark)
        # One request per event-loop turn, however many signals a mouse move sends.
        self._coalesce = QTimer(self, singleShot=True, interval=0)
        self._coalesce.timeout.connect(self._submit)
        self._settle = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._settle.timeout.connect(self._submit)
        queue.previewReady.connect(self._preview_ready)
        canvas.backgroundSet.connect(self._render_shown)

    # --- the switch and the quality ----------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._enabled

    def remembered(self) -> bool:
        return self.settings.value(LIVE_KEY, False, type=bool) is True

    def set_enabled(self, on: bool) -> None:
        self.settings.setValue(LIVE_KEY, on)
        if on == self._enabled:
            return
        self._enabled = on
        if on:
            self._schedule()
        else:
            self._drop()

    @property
    def settle_ms(self) -> int:
        return self._settle.interval()

    def set_settle_ms(self, ms: int) -> None:
        """How long the scene must be still before an edit cancels the preview in flight (0: at once, so a
        continuous drag shows nothing until it stops; for comparing in the benchmark)."""
        self._settle.setInterval(max(0, ms))

    @property
    def model_id(self) -> str | None:
        editor, defaults = self._editor, self._defaults()
        if editor is None or defaults is None:
            return None
        return editor.scene.settings.effective(defaults).model_id

    def quality(self, model_id: str) -> PreviewQuality:
        """The model's preview quality, with the steps the user chose for it (else its default)."""
        default = default_quality(model_id)
        steps = self._chosen_steps().get(model_id)
        return PreviewQuality(steps, default.scheduler) if steps is not None else default

    def steps(self) -> int:
        model_id = self.model_id
        return self.quality(model_id).steps if model_id is not None else default_quality("").steps

    def set_steps(self, steps: int) -> None:
        """The preview steps for the current scene's model, remembered per model."""
        model_id = self.model_id
        steps = max(1, min(MAX_PREVIEW_STEPS, steps))
        if model_id is None or steps == self.quality(model_id).steps:
            return
        chosen = self._chosen_steps()
        chosen[model_id] = steps
        self.settings.setValue(STEPS_KEY, json.dumps(chosen))
        self._schedule()

    def _chosen_steps(self) -> dict[str, int]:
        raw = self.settings.value(STEPS_KEY, "{}")
        try:
            chosen = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            return {}  # a hand-edited settings file: the defaults
        if not isinstance(chosen, dict):
            return {}
        return {
            k: v
            for k, v in chosen.items()
            if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_PREVIEW_STEPS
        }

    # --- following the scene ------------------------------------------------------------------

    def follow(self, editor: SceneEditor | None) -> None:
        """Preview another scene (or none): the old scene's preview goes."""
        self._links.clear()
        self._drop()
        self._editor = editor
        if editor is not None:
            document = editor.document
            for signal in (document.instanceChanged, document.instancesChanged):
                self._links.connect(signal, self._schedule)
            self._links.connect(document.settingsChanged, self._settings_changed)
        self.stepsChanged.emit(self.steps())
        self._schedule()

    def _settings_changed(self) -> None:
        self.stepsChanged.emit(self.steps())  # the scene's model may have changed
        self._schedule()

    def _schedule(self, *_args: object) -> None:
        if not (self._enabled and self._editor is not None):
            return
        if self._in_flight:
            self._settle.start()  # restarted by every move: goes once the scene is still (or the preview lands)
        else:
            self._coalesce.start()

    def request(self) -> RenderRequest | None:
        """The current scene at preview quality; raises RequestValidationError when it cannot render."""
        editor, defaults = self._editor, self._defaults()
        if editor is None or defaults is None:
            return None
        full = scene_request(editor.scene, defaults)
        return at_preview_quality(full, self.quality(full.model_id))

    def _submit(self) -> None:
        self._coalesce.stop()
        self._settle.stop()
        if not self._enabled:
            return
        try:
            request = self.request()
        except RequestValidationError as exc:
            self._drop()
            self.statusChanged.emit(f"Live preview: {'; '.join(problems_in_words(exc.problems)[:2])}")
            return
        if request is None:
            return
        self._token += 1
        self._submitted = True
        self._in_flight = True
        self.submits += 1
        self.queue.request_preview(self._token, request)

    # --- showing ------------------------------------------------------------------------------

    def _preview_ready(self, preview: LivePreview) -> None:
        if preview.token != self._token:
            return  # out of date: a newer edit, another scene, Live off
        self._in_flight = False
        if self._settle.isActive():  # edits made while it rendered: their preview goes now
            self._settle.stop()
            self._coalesce.start()
        if not (self._enabled and self._submitted):
            return  # a render was shown since it was asked for
        if preview.error is not None:
            self.statusChanged.emit(f"Live preview failed: {preview.error}")
            return
        self.shown = preview
        self.canvas.set_preview(preview.image)
        self.statusChanged.emit(status_text(preview))

    def _render_shown(self) -> None:
        """A render was put on the canvas (the history's "show", a finished job): it replaces the preview,
        and the preview of an edit made before it no longer comes."""
        self._submitted = False
        self.shown = None
        if self._enabled:
            self.statusChanged.emit("Live preview · edit the scene to preview it again")

    def _drop(self) -> None:
        """No preview: none on the canvas, none waiting or rendering."""
        self._coalesce.stop()
        self._settle.stop()
        self._token += 1
        self._submitted = False
        self._in_flight = False
        self.shown = None
        self.canvas.set_preview(None)
        self.queue.clear_preview()
        self.statusChanged.emit("Live preview" if self._enabled else "")


def status_text(preview: LivePreview) -> str:
    count = len(preview.request.instances)
    reused = len(preview.reused_instances)
    text = f"Live preview · {preview.seconds:.1f} s"
    return f"{text} · {reused} of {count} instances reused" if count else text
