"""A scene's own sampler settings, typed, and how they resolve against the project's defaults.

A scene stores the settings it overrides as a JSON object (`scenes.overrides`): only the keys the user
changed, e.g. `{"steps": 30, "scheduler": "ddim", "seed_mode": "random"}`. `SceneSettings` is that
object as a frozen value (`None` = "the project's default"), `ProjectDefaults` the project's settings
row as one, and `SceneSettings.effective(defaults)` the values a render uses. Reading, resolving,
editing (set, clear at the default, "use project defaults") and reversing (a render's request back to
settings) all live here, so the stored JSON means the same thing everywhere.

Validation: unknown keys, empty (null) values, unknown schedulers and seed modes are refused here;
numbers are checked where they are used, when a `RenderRequest` is built, so the messages are the
request's own ("steps: 0 is not an integer between 1 and 1000").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, cast

from engine.request import LoraWeight, Problem, RenderRequest, RequestValidationError, Scheduler, lora_problems

SeedMode = Literal["fixed", "random"]
# "fixed": every render of the scene uses its seed (iterating keeps the image); "random": each render draws one.
SEED_MODES: Final[tuple[SeedMode, ...]] = ("fixed", "random")
DEFAULT_SEED_MODE: Final[SeedMode] = "fixed"
# The sampler settings a scene may override ("Use project defaults" clears exactly these).
SAMPLER_FIELDS: Final = ("steps", "guidance", "alpha", "mis", "scheduler")
# Every key `scenes.overrides` may hold, in the order `to_overrides` writes them. "loras": the LoRAs the scene
# renders with (names from the model settings, a weight each), which the project has no default for.
OVERRIDE_KEYS: Final = (*SAMPLER_FIELDS, "model_id", "seed_mode", "loras")
# The settings restored from a render's request (the model and the seed mode stay the scene's).
_REQUEST_FIELDS: Final = ("steps", "guidance", "alpha", "mis")


@dataclass(frozen=True)
class ProjectDefaults:
    """The project's render settings, which scenes override."""

    name: str
    steps: int
    guidance: float
    alpha: float
    mis: float
    scheduler: str
    negative_prompt: str
    model_id: str
    width: int
    height: int

    @classmethod
    def default(cls) -> ProjectDefaults:
        """The settings of a new project (and what to show while no project is open)."""
        return FALLBACK

    def scheduler_enum(self) -> Scheduler:
        """The default scheduler; RequestValidationError if the project names one this app lacks."""
        return _scheduler(self.scheduler)


def _official_defaults() -> ProjectDefaults:
    # A new project starts from the request's own defaults, the official InstanceDiffusion ones.
    official = RenderRequest(prompt="")
    return ProjectDefaults(
        name="",
        steps=official.steps,
        guidance=official.guidance,
        alpha=official.alpha,
        mis=official.mis,
        scheduler=official.scheduler.value,
        negative_prompt=official.negative_prompt,
        model_id=official.model_id,
        width=official.width,
        height=official.height,
    )


# steps 50, guidance 7.5, alpha 0.75, mis 0.36, "plms", model "demo", 512 x 512, no negative prompt.
# projects/models.py takes its column defaults from here.
FALLBACK: Final = _official_defaults()


@dataclass(frozen=True)
class EffectiveSettings:
    """The sampler settings a render of the scene uses: the scene's overrides, else the project's."""

    steps: int
    guidance: float
    alpha: float
    mis: float
    scheduler: Scheduler
    model_id: str
    loras: tuple[LoraWeight, ...] = ()


@dataclass(frozen=True)
class SceneSettings:
    """What a scene overrides: `None` means "the project's default"; the seed mode is "fixed" unless set.

    A scheduler given as its name (`"ddim"`) is stored as the `Scheduler`; an unknown scheduler or seed
    mode is a RequestValidationError.
    """

    steps: int | None = None
    guidance: float | None = None
    alpha: float | None = None
    mis: float | None = None
    scheduler: Scheduler | None = None
    model_id: str | None = None
    seed_mode: SeedMode = DEFAULT_SEED_MODE
    loras: tuple[LoraWeight, ...] = ()

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        loras: object = self.loras
        if isinstance(loras, (list, tuple)):  # stored JSON: a list of {"name", "weight"}
            try:
                object.__setattr__(self, "loras", _loras(loras))
            except RequestValidationError as exc:
                problems.extend(exc.problems)
        problems.extend(lora_problems(self.loras))
        scheduler: object = self.scheduler
        if scheduler is not None and not isinstance(scheduler, Scheduler):
            try:
                object.__setattr__(self, "scheduler", _scheduler(scheduler))
            except RequestValidationError as exc:
                problems.extend(exc.problems)
        if self.seed_mode not in SEED_MODES:
            problems.append(
                Problem("seed_mode", f"unknown seed mode {self.seed_mode!r}; use one of {', '.join(SEED_MODES)}")
            )
        if problems:
            raise RequestValidationError(problems)

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | None) -> SceneSettings:
        """A scene's stored overrides (`scenes.overrides`, `SceneLayout.overrides`) as settings.

        Raises RequestValidationError for unknown keys (alone, as the first thing checked), empty
        values, an unknown scheduler or seed mode."""
        stored: object = overrides  # read from JSON: check what it is, whatever the annotation says
        if not stored:
            return cls()
        if not isinstance(stored, Mapping):
            raise RequestValidationError([Problem("overrides", "scene overrides must be a JSON object")])
        unknown = sorted(str(key) for key in set(stored) - set(OVERRIDE_KEYS))
        if unknown:
            raise RequestValidationError([Problem("overrides", f"unknown scene overrides: {', '.join(unknown)}")])
        empty = [key for key in OVERRIDE_KEYS if key in stored and stored[key] is None]
        if empty:
            raise RequestValidationError([Problem(key, f"{key}: the scene override is empty (null)") for key in empty])
        return cls(**stored)

    def to_overrides(self) -> dict[str, Any]:
        """The JSON object to store: only the overridden keys, in `OVERRIDE_KEYS` order, the scheduler by
        name, and the seed mode only when it is "random" (the panel never stores the default)."""
        overrides: dict[str, Any] = {}
        for key in OVERRIDE_KEYS:
            if not self.overridden(key):
                continue
            value = getattr(self, key)
            if key == "loras":
                value = [lora.to_dict() for lora in value]
            overrides[key] = value.value if isinstance(value, Scheduler) else value
        return overrides

    def overridden(self, name: str) -> bool:
        """Whether the scene sets `name` itself (for the seed mode: whether it is not "fixed")."""
        _check_name(name)
        if name == "seed_mode":
            return self.seed_mode != DEFAULT_SEED_MODE
        if name == "loras":
            return bool(self.loras)
        return getattr(self, name) is not None

    @property
    def has_sampler_overrides(self) -> bool:
        """Whether "Use project defaults" would change anything."""
        return any(self.overridden(name) for name in SAMPLER_FIELDS)

    def effective(self, defaults: ProjectDefaults) -> EffectiveSettings:
        """Every setting concrete. RequestValidationError if the project's scheduler is unknown and the
        scene does not override it."""
        return EffectiveSettings(
            steps=self.steps if self.steps is not None else defaults.steps,
            guidance=self.guidance if self.guidance is not None else defaults.guidance,
            alpha=self.alpha if self.alpha is not None else defaults.alpha,
            mis=self.mis if self.mis is not None else defaults.mis,
            scheduler=self.scheduler if self.scheduler is not None else defaults.scheduler_enum(),
            model_id=self.model_id if self.model_id is not None else defaults.model_id,
            loras=self.loras,
        )

    def with_value(self, name: str, value: Any, defaults: ProjectDefaults) -> SceneSettings:
        """Set `name` (any of `OVERRIDE_KEYS`) to `value`, as the settings panel does: a value equal to
        the project's default (for the seed mode: "fixed"), or `None`, clears the override instead."""
        _check_name(name)
        if name == "seed_mode":
            return replace(self, seed_mode=DEFAULT_SEED_MODE if value is None else value)
        if name == "loras":
            return replace(self, loras=() if value is None else tuple(value))
        if name == "scheduler" and value is not None:
            value = _scheduler(value)
        if value is not None and value == getattr(defaults, name):
            value = None
        return replace(self, **{name: value})

    def without_sampler_overrides(self) -> SceneSettings:
        """The panel's "Use project defaults": the sampler settings cleared, the model and seed mode kept."""
        return replace(self, steps=None, guidance=None, alpha=None, mis=None, scheduler=None)

    @classmethod
    def from_request(
        cls, request: RenderRequest, defaults: ProjectDefaults, *, keep: SceneSettings | None = None
    ) -> SceneSettings:
        """The settings that render `request` again (restoring a render's layout): the sampler settings
        overridden where the request differs from the project's defaults; the model, its LoRAs and the seed
        mode kept from `keep` (the scene's current settings), not taken from the request."""
        keep = keep if keep is not None else cls()
        differing = {
            name: getattr(request, name)
            for name in _REQUEST_FIELDS
            if getattr(request, name) != getattr(defaults, name)
        }
        scheduler = request.scheduler if request.scheduler.value != defaults.scheduler else None
        return cls(
            **differing, scheduler=scheduler, model_id=keep.model_id, seed_mode=keep.seed_mode, loras=keep.loras
        )


def _check_name(name: str) -> None:
    if name not in OVERRIDE_KEYS:
        raise ValueError(f"{name!r} is not a scene setting; expected one of {', '.join(OVERRIDE_KEYS)}")


def _loras(values: list[object] | tuple[object, ...]) -> tuple[LoraWeight, ...]:
    """LoRAs as stored ({"name", "weight"} objects) or given (LoraWeight), as LoraWeights."""
    loras: list[LoraWeight] = []
    problems: list[Problem] = []
    for index, value in enumerate(values):
        try:
            loras.append(value if isinstance(value, LoraWeight) else LoraWeight.from_dict(value, f"loras[{index}]"))
        except RequestValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RequestValidationError(problems)
    return tuple(loras)


def _scheduler(name: object) -> Scheduler:
    try:
        return Scheduler(cast(str, name))
    except (ValueError, TypeError):
        raise RequestValidationError([Problem("scheduler", f"unknown scheduler {name!r}")]) from None
