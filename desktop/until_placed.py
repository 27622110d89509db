"""The job option "until placed, at most N seeds": a render is checked, and on a miss the next seed is tried,
up to N in all (projects.queue keeps the chain). Remembered in the settings; offered only when renders of the
current scene's model can be checked (the demo model always; any other needs a checker folder in the model
settings)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QSpinBox, QWidget

from desktop.editor.connections import Connections
from desktop.editor.scene_editor import SceneEditor
from desktop.editor.workbench import Workbench
from engine.model_ids import DEMO
from engine.model_settings import ModelSettings, ModelSettingsError
from projects.queue import MAX_UNTIL_PLACED
from projects.scene_settings import ProjectDefaults

MIN_SEEDS: Final = 2  # one seed is an ordinary render
DEFAULT_SEEDS: Final = 4
ABOUT: Final = (
    "Until placed: check where each instance landed, and when one missed, render again with the next seed, "
    "up to this many seeds in all. Every attempt stays in the history; the best one gets a star."
)


def missing_checker(model_id: str, model_settings_path: Path) -> str | None:
    """Why renders of `model_id` cannot be checked, in words; None when they can."""
    if model_id == DEMO:
        return None  # the shape-world checker needs no files
    try:
        settings = ModelSettings.load(model_settings_path, missing_ok=True)
    except ModelSettingsError as exc:
        return f"Renders are not checked: the model settings cannot be read ({exc.reason})"
    if settings.checker is None:
        return (
            f"Renders of {model_id} are not checked: choose a checker folder (an OWLv2 or Grounding DINO "
            "detector) in File → Model files…"
        )
    return None


class UntilPlacedOption(QWidget):
    """A check box and a seed count; `seeds()` is what a job gets as `until_placed` (0: render once)."""

    def __init__(self, settings: QSettings, key: str = "untilPlaced", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings, self.key = settings, key
        self.check = QCheckBox("Until placed")
        self.check.setObjectName("untilPlaced")
        self.count = QSpinBox()
        self.count.setObjectName("untilPlacedSeeds")
        self.count.setRange(MIN_SEEDS, MAX_UNTIL_PLACED)
        self.count.setPrefix("≤ ")  # "until placed, at most N seeds", short enough for the tool bar
        self.count.setSuffix(" seeds")
        self.check.setChecked(settings.value(f"{key}/on", False, type=bool) is True)
        seeds = settings.value(f"{key}/seeds", DEFAULT_SEEDS, type=int)
        self.count.setValue(seeds if isinstance(seeds, int) else DEFAULT_SEEDS)  # clamped to the range
        self.count.setEnabled(self.check.isChecked())
        self.check.toggled.connect(self._toggled)
        self.count.valueChanged.connect(lambda value: self.settings.setValue(f"{self.key}/seeds", value))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.check)
        layout.addWidget(self.count)
        self.why_not: str | None = None
        self.set_missing_checker(None)
        self._links = Connections()
        self._model_id: str | None = None

    def seeds(self) -> int:
        """The job's `until_placed`: the seed count when on and offered, else 0."""
        return self.count.value() if self.check.isChecked() and self.why_not is None else 0

    def for_dialog(self, key: str) -> UntilPlacedOption:
        """The same option for a dialog (the sweep): remembered under `key`, offered as this one is."""
        option = UntilPlacedOption(self.settings, key)
        option.set_missing_checker(self.why_not)
        return option

    def set_missing_checker(self, why_not: str | None) -> None:
        """Offer the option, or grey it out with the reason (`missing_checker`) as its tooltip."""
        self.why_not = why_not
        self.check.setEnabled(why_not is None)
        self.count.setEnabled(why_not is None and self.check.isChecked())
        for widget in (self, self.check, self.count):
            widget.setToolTip(why_not or ABOUT)

    def watch(
        self, workbench: Workbench, defaults: Callable[[], ProjectDefaults | None], model_settings_path: Path
    ) -> None:
        """Follow the scene on the canvas: its model decides whether the option is offered."""
        self._workbench, self._defaults, self._settings_path = workbench, defaults, model_settings_path
        workbench.currentChanged.connect(self._follow)
        self._follow(workbench.current)

    def recheck(self) -> None:
        """Read the model settings again (a checker folder may have been chosen meanwhile)."""
        self._model_id = None
        self._judge()

    def _follow(self, editor: SceneEditor | None) -> None:
        self._links.clear()
        if editor is not None:
            self._links.connect(editor.document.settingsChanged, self._judge)
        self._model_id = None
        self._judge()

    def _judge(self) -> None:
        editor, defaults = self._workbench.current, self._defaults()
        model_id = editor.scene.settings.effective(defaults).model_id if editor and defaults else None
        if model_id == self._model_id:
            return  # the model did not change: no need to read the settings file again
        self._model_id = model_id
        self.set_missing_checker(None if model_id is None else missing_checker(model_id, self._settings_path))

    def _toggled(self, on: bool) -> None:
        self.settings.setValue(f"{self.key}/on", on)
        self.count.setEnabled(on and self.why_not is None)
