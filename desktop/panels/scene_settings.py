"""Scene settings: caption, negative prompt, canvas size, seed, the sampler settings and the scene's LoRAs.

Sampler settings show the project default until the user changes them; a changed value is stored as a
scene override, and setting it back to the default removes the override. LoRAs are added from those the
model settings name (`lora_names`), each with a weight, and removed again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop.editor.connections import Connections
from desktop.editor.scene_editor import MAX_SEED, SceneEditor
from desktop.icons import icon
from engine.model_ids import available_model_ids
from engine.model_settings import ModelSettings, ModelSettingsError
from engine.request import MAX_LORA_WEIGHT, MAX_LORAS, LoraWeight, Scheduler
from projects.scene_settings import SAMPLER_FIELDS, ProjectDefaults

SIZE_PRESETS: tuple[tuple[int, int], ...] = ((512, 512), (768, 512), (512, 768))


class SceneSettingsPanel(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.editor: SceneEditor | None = None
        self._links = Connections()
        self.defaults: ProjectDefaults | None = None
        self._loading = False

        self.name = QLineEdit()
        self.name.setObjectName("sceneName")
        self.caption = QPlainTextEdit()
        self.caption.setObjectName("sceneCaption")
        self.caption.setPlaceholderText("The global caption: what the whole image shows")
        self.caption.setFixedHeight(64)
        self.negative = QLineEdit()
        self.negative.setObjectName("sceneNegative")

        self.size_preset = QComboBox()
        for w, h in SIZE_PRESETS:
            self.size_preset.addItem(f"{w} × {h}", f"{w}x{h}")
        self.size_preset.addItem("Custom", "")
        self.width_spin = _size_spin()
        self.height_spin = _size_spin()
        size_row = QHBoxLayout()
        size_row.addWidget(self.size_preset, 1)
        size_row.addWidget(self.width_spin)
        size_row.addWidget(self.height_spin)

        self.seed = QSpinBox()
        self.seed.setObjectName("sceneSeed")
        self.seed.setRange(0, MAX_SEED)
        self.dice = QToolButton()
        self.dice.setIcon(icon("dice"))
        self.dice.setToolTip("A new random seed (Ctrl+R)")
        self.dice.setObjectName("seedDice")
        self.seed_mode = QComboBox()
        self.seed_mode.addItem("fixed", "fixed")
        self.seed_mode.addItem("new random each render", "random")
        self.seed_mode.setToolTip(
            "Fixed: every render uses this seed, so editing one instance keeps the rest of the image.\n"
            "New random: each render draws a new seed."
        )
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.dice)
        seed_row.addWidget(self.seed_mode)

        self.steps = QSpinBox()
        self.steps.setRange(1, 500)
        self.guidance = _double(0.0, 30.0, 0.5)
        self.alpha = _double(0.0, 1.0, 0.05)
        self.alpha.setToolTip("Share of the steps that use the grounding (the official default is 0.75)")
        self.mis = _double(0.0, 1.0, 0.05)
        self.mis.setToolTip("Share of the steps that run the multi-instance sampler (0 turns it off)")
        self.scheduler = QComboBox()
        for scheduler in Scheduler:
            self.scheduler.addItem(scheduler.value, scheduler.value)
        self.model = QComboBox()
        self.model.setObjectName("sceneModel")
        self.model.setToolTip(
            "The model this scene renders with: SD1.5, the bundled demo model, or a fine-tuned base\n"
            "added in the model settings (`main.py models set --base NAME=PATH`)"
        )
        self.reset = QPushButton("Use project defaults")
        self.reset.setToolTip("Forget this scene's own sampler settings")

        # The model settings file (the window sets it): the LoRAs it names are read when the "Add" menu opens.
        self.model_settings_path: Path | None = None
        self.lora_names: Callable[[], Sequence[str]] = self._configured_loras
        self.lora_rows: dict[str, tuple[QWidget, QDoubleSpinBox]] = {}
        self._lora_list = QVBoxLayout()
        self._lora_list.setContentsMargins(0, 0, 0, 0)
        self.add_lora = QToolButton()
        self.add_lora.setText("Add LoRA")
        self.add_lora.setObjectName("addLora")
        self.add_lora.setToolTip("Apply a LoRA from the model settings to this scene (Settings -> Models adds them)")
        self.add_lora.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.add_lora.setMenu(QMenu(self.add_lora))
        self.add_lora.menu().aboutToShow.connect(self._fill_lora_menu)
        loras_box = QVBoxLayout()
        loras_box.addLayout(self._lora_list)
        loras_box.addWidget(self.add_lora, 0, Qt.AlignmentFlag.AlignLeft)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Name", self.name)
        form.addRow("Caption", self.caption)
        form.addRow("Negative", self.negative)
        form.addRow("Size", size_row)
        form.addRow("Seed", seed_row)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Alpha", self.alpha)
        form.addRow("MIS", self.mis)
        form.addRow("Scheduler", self.scheduler)
        form.addRow("Model", self.model)
        form.addRow("LoRAs", loras_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addWidget(self.reset, 0, Qt.AlignmentFlag.AlignRight)
        layout.addStretch(1)

        self.name.textEdited.connect(lambda text: self._set("Rename scene", typing=True, name=text))
        self.caption.textChanged.connect(self._caption_changed)
        self.negative.textEdited.connect(self._negative_changed)
        self.size_preset.activated.connect(self._preset_chosen)
        self.width_spin.valueChanged.connect(self._size_changed)
        self.height_spin.valueChanged.connect(self._size_changed)
        self.seed.valueChanged.connect(lambda value: self._set("Change seed", typing=True, seed=value))
        self.dice.clicked.connect(self.new_seed)
        self.seed_mode.activated.connect(lambda _i: self._set_override("seed_mode", self.seed_mode.currentData()))
        self.steps.valueChanged.connect(lambda v: self._set_override("steps", v))
        self.guidance.valueChanged.connect(lambda v: self._set_override("guidance", v))
        self.alpha.valueChanged.connect(lambda v: self._set_override("alpha", v))
        self.mis.valueChanged.connect(lambda v: self._set_override("mis", v))
        self.scheduler.activated.connect(lambda _i: self._set_override("scheduler", self.scheduler.currentData()))
        self.model.activated.connect(lambda _i: self._set_override("model_id", self.model.currentData()))
        self.reset.clicked.connect(self._reset_overrides)
        self.refresh()

    def set_editor(self, editor: SceneEditor | None) -> None:
        self._links.clear()
        self.editor = editor
        if editor is not None:
            self._links.connect(editor.document.settingsChanged, self.refresh)
        self.refresh()

    def set_defaults(self, defaults: ProjectDefaults) -> None:
        self.defaults = defaults
        self.refresh()

    # --- document -> widgets ---------------------------------------------------------------

    def refresh(self) -> None:
        scene = self.editor.scene if self.editor else None
        self.setEnabled(scene is not None)
        if scene is None:
            return
        self._loading = True
        try:
            if self.name.text() != scene.name:
                self.name.setText(scene.name)
            if self.caption.toPlainText() != scene.caption:
                self.caption.setPlainText(scene.caption)
            if self.negative.text() != (scene.negative_prompt or ""):
                self.negative.setText(scene.negative_prompt or "")
            if self.defaults is not None:
                self.negative.setPlaceholderText(f"project default: {self.defaults.negative_prompt or '(none)'}")
            preset = self.size_preset.findData(f"{scene.width}x{scene.height}")
            self.size_preset.setCurrentIndex(preset if preset >= 0 else self.size_preset.count() - 1)
            self.width_spin.setValue(scene.width)
            self.height_spin.setValue(scene.height)
            self.seed.setValue(scene.seed)
            settings = scene.settings
            effective = settings.effective(self._defaults)
            self.seed_mode.setCurrentIndex(max(0, self.seed_mode.findData(settings.seed_mode)))
            self.steps.setValue(effective.steps)
            self.guidance.setValue(effective.guidance)
            self.alpha.setValue(effective.alpha)
            self.mis.setValue(effective.mis)
            self.scheduler.setCurrentIndex(max(0, self.scheduler.findData(effective.scheduler.value)))
            for name in SAMPLER_FIELDS:
                widget = getattr(self, name)
                widget.setProperty("overridden", settings.overridden(name))
                widget.style().unpolish(widget)
                widget.style().polish(widget)
            self.reset.setEnabled(settings.has_sampler_overrides)
            self._show_models(settings.model_id)
            self._show_loras(settings.loras)
        finally:
            self._loading = False

    def _show_models(self, chosen: str | None) -> None:
        """The project's default first (no override), then every model id the settings offer; a model the
        scene names that is no longer configured stays listed, marked, so the choice is visible."""
        configured = available_model_ids(self._model_settings())
        items: list[tuple[str, str | None]] = [(f"project default ({self._defaults.model_id})", None)]
        items += [(name, name) for name in configured]
        if chosen is not None and chosen not in configured:
            items.append((f"{chosen} (not configured)", chosen))
        if [(self.model.itemText(i), self.model.itemData(i)) for i in range(self.model.count())] != items:
            self.model.clear()
            for text, data in items:
                self.model.addItem(text, data)
        self.model.setCurrentIndex(max(0, self.model.findData(chosen)) if chosen is not None else 0)

    def _show_loras(self, loras: tuple[LoraWeight, ...]) -> None:
        """One row per LoRA (name, weight, remove); rows are rebuilt only when the names change, so a weight
        being typed keeps its focus."""
        if tuple(self.lora_rows) != tuple(lora.name for lora in loras):
            for row, _spin in self.lora_rows.values():
                self._lora_list.removeWidget(row)
                row.hide()  # at once: deleteLater waits for the event loop, and a removed row would linger
                row.deleteLater()
            self.lora_rows = {lora.name: self._lora_row(lora.name) for lora in loras}
        for lora in loras:
            self.lora_rows[lora.name][1].setValue(lora.weight)
        self.add_lora.setEnabled(len(loras) < MAX_LORAS)

    def _lora_row(self, name: str) -> tuple[QWidget, QDoubleSpinBox]:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        weight = _double(-MAX_LORA_WEIGHT, MAX_LORA_WEIGHT, 0.05)
        weight.setToolTip(f"How strongly {name!r} acts: 1 as trained, 0 not at all, negative to subtract it")
        weight.valueChanged.connect(lambda value: self._set_lora_weight(name, value))
        remove = QToolButton()
        remove.setText("×")
        remove.setToolTip(f"Remove the LoRA {name!r} from this scene")
        remove.clicked.connect(lambda: self._remove_lora(name))
        layout.addWidget(QLabel(name), 1)
        layout.addWidget(weight)
        layout.addWidget(remove)
        self._lora_list.addWidget(row)
        return row, weight

    @property
    def _defaults(self) -> ProjectDefaults:
        return self.defaults if self.defaults is not None else ProjectDefaults.default()

    # --- widgets -> commands ---------------------------------------------------------------

    def _set(self, text: str, *, typing: bool = False, **fields: Any) -> None:
        if self._loading or self.editor is None:
            return
        self.editor.set_fields(text, typing=typing, **fields)

    def _caption_changed(self) -> None:
        self._set("Edit caption", typing=True, caption=self.caption.toPlainText())

    def _negative_changed(self, text: str) -> None:
        self._set("Edit negative prompt", typing=True, negative_prompt=text or None)

    def _preset_chosen(self, _index: int) -> None:
        size = self.size_preset.currentData()
        if size:
            width, height = (int(v) for v in size.split("x"))
            self._set("Change size", width=width, height=height)

    def _size_changed(self) -> None:
        self._set("Change size", width=self.width_spin.value(), height=self.height_spin.value())

    def new_seed(self) -> None:
        if self.editor is not None:
            self.editor.new_seed()

    def _set_override(self, name: str, value: Any) -> None:
        if self._loading or self.editor is None:
            return
        settings = self.editor.scene.settings.with_value(name, value, self._defaults)
        self._set(f"Change {name.replace('_', ' ')}", settings=settings)

    def _model_settings(self) -> ModelSettings | None:
        if self.model_settings_path is None:
            return None
        try:
            return ModelSettings.load(self.model_settings_path, missing_ok=True)
        except ModelSettingsError:  # the settings dialog and `models verify` say what is wrong with the file
            return None

    def _configured_loras(self) -> list[str]:
        settings = self._model_settings()
        return [] if settings is None else sorted(settings.loras)

    def _fill_lora_menu(self) -> None:
        menu = self.add_lora.menu()
        menu.clear()
        used = set(self.lora_rows)
        names = [name for name in self.lora_names() if name not in used]
        for name in names:
            menu.addAction(name, partial(self.add_lora_named, name))
        if not names:
            menu.addAction("No other LoRAs are configured (Settings -> Models)").setEnabled(False)

    def _set_loras(self, text: str, loras: tuple[LoraWeight, ...]) -> None:
        if self._loading or self.editor is None:
            return
        self._set(text, settings=self.editor.scene.settings.with_value("loras", loras, self._defaults))

    def add_lora_named(self, name: str, weight: float = 1.0) -> None:
        """Apply the LoRA `name` to the scene at `weight` (the "Add LoRA" menu's action)."""
        if self.editor is not None and name not in self.lora_rows:
            self._set_loras(f"Add LoRA {name}", (*self.editor.scene.settings.loras, LoraWeight(name, weight)))

    def _set_lora_weight(self, name: str, weight: float) -> None:
        if self.editor is not None:
            loras = self.editor.scene.settings.loras
            self._set_loras(
                f"Change LoRA {name} weight",
                tuple(LoraWeight(lora.name, weight) if lora.name == name else lora for lora in loras),
            )

    def _remove_lora(self, name: str) -> None:
        if self.editor is not None:
            loras = self.editor.scene.settings.loras
            self._set_loras(f"Remove LoRA {name}", tuple(lora for lora in loras if lora.name != name))

    def _reset_overrides(self) -> None:
        if self.editor is None:
            return
        self._set("Use project defaults", settings=self.editor.scene.settings.without_sampler_overrides())


def _size_spin() -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(64, 2048)
    spin.setSingleStep(64)
    spin.setSuffix(" px")
    # Only multiples of 64: SD's VAE and UNet need sides divisible by 64 at these sizes.
    spin.setCorrectionMode(QSpinBox.CorrectionMode.CorrectToNearestValue)
    spin.setStepType(QSpinBox.StepType.DefaultStepType)
    spin.valueChanged.connect(lambda v: spin.setValue(max(64, round(v / 64) * 64)) if v % 64 else None)
    return spin


def _double(low: float, high: float, step: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(2)
    return spin
