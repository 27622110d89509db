import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from engine.request import (
    InstanceKind,
    InstanceSpec,
    LoraWeight,
    Problem,
    RenderRequest,
    RequestValidationError,
    Scheduler,
)
from projects.database import Project
from projects.models import ProjectSettings, Scene
from projects.scene_settings import (
    FALLBACK,
    OVERRIDE_KEYS,
    SAMPLER_FIELDS,
    SEED_MODES,
    EffectiveSettings,
    ProjectDefaults,
    SceneSettings,
)
from projects.scenes import (
    SceneLayout,
    add_scene,
    get_settings,
    instance_spec,
    project_defaults,
    queue_scene,
    scene_to_request,
)

CAT = InstanceSpec("a cat", InstanceKind.BOX, box=(0.1, 0.1, 0.6, 0.6))
DEFAULTS = ProjectDefaults(
    name="p",
    steps=25,
    guidance=7.5,
    alpha=0.75,
    mis=0.36,
    scheduler="ddim",
    negative_prompt="lowres",
    model_id="demo",
    width=512,
    height=512,
)

# --- what the app stores today -----------------------------------------------------------------


@pytest.mark.parametrize(
    "stored",
    [
        {},
        {"steps": 30},
        {"steps": 30, "mis": 0.0},
        {"seed_mode": "random"},
        {"model_id": "sd15"},
        {"scheduler": "dpmsolver++", "seed_mode": "random"},
        # what importing one of our PNGs writes
        {"steps": 30, "guidance": 6.5, "alpha": 0.8, "mis": 0.2, "scheduler": "ddim"},
        {
            "steps": 10,
            "guidance": 3,
            "alpha": 1,
            "mis": 0,
            "scheduler": "plms",
            "model_id": "x",
            "seed_mode": "random",
        },
        {"loras": [{"name": "ink", "weight": 0.8}]},
        {"model_id": "sd15", "loras": [{"name": "ink", "weight": 0.8}, {"name": "detail v2", "weight": -1.0}]},
    ],
)
def test_stored_overrides_round_trip_exactly(stored: dict[str, Any]) -> None:
    again = SceneSettings.from_overrides(stored).to_overrides()
    assert again == stored
    assert json.dumps(again) == json.dumps(stored)  # same values of the same types, in OVERRIDE_KEYS order
    assert [type(v) for v in again.values()] == [type(v) for v in stored.values()]


def test_the_scheduler_is_typed_and_stored_by_name() -> None:
    settings = SceneSettings.from_overrides({"scheduler": "ddim"})
    assert settings.scheduler is Scheduler.DDIM
    assert type(settings.to_overrides()["scheduler"]) is str
    assert SceneSettings(scheduler="dpmsolver++").scheduler is Scheduler.DPM_SOLVER_PP  # type: ignore[arg-type]


def test_no_overrides_and_the_fixed_seed_mode_store_nothing() -> None:
    assert SceneSettings.from_overrides(None) == SceneSettings()
    assert SceneSettings().to_overrides() == {}
    # "fixed" is the default; the panel never stores it, and reading a stored one normalises it away.
    assert SceneSettings.from_overrides({"seed_mode": "fixed"}).to_overrides() == {}


def test_override_keys_and_seed_modes() -> None:
    assert OVERRIDE_KEYS == ("steps", "guidance", "alpha", "mis", "scheduler", "model_id", "seed_mode", "loras")
    assert SAMPLER_FIELDS == ("steps", "guidance", "alpha", "mis", "scheduler")
    assert SEED_MODES == ("fixed", "random")


# --- validation --------------------------------------------------------------------------------


def problems_of(overrides: object) -> tuple[Problem, ...]:
    with pytest.raises(RequestValidationError) as info:
        SceneSettings.from_overrides(overrides)  # type: ignore[arg-type]
    return info.value.problems


def test_unknown_keys_are_refused_first_and_alone() -> None:
    problems = problems_of({"stepz": 3, "cfg": 1, "scheduler": "euler"})
    assert problems == (Problem("overrides", "unknown scene overrides: cfg, stepz"),)


def test_unknown_schedulers_and_seed_modes_are_refused() -> None:
    assert problems_of({"scheduler": "euler"}) == (Problem("scheduler", "unknown scheduler 'euler'"),)
    assert problems_of({"scheduler": 3}) == (Problem("scheduler", "unknown scheduler 3"),)
    assert problems_of({"seed_mode": "sometimes", "scheduler": "euler"}) == (
        Problem("scheduler", "unknown scheduler 'euler'"),
        Problem("seed_mode", "unknown seed mode 'sometimes'; use one of fixed, random"),
    )
    with pytest.raises(RequestValidationError, match="unknown scheduler 'euler'"):
        SceneSettings(scheduler="euler")  # type: ignore[arg-type]


def test_null_values_and_non_objects_are_refused() -> None:
    assert problems_of({"steps": None, "model_id": None}) == (
        Problem("steps", "steps: the scene override is empty (null)"),
        Problem("model_id", "model_id: the scene override is empty (null)"),
    )
    assert problems_of([["steps", 3]]) == (Problem("overrides", "scene overrides must be a JSON object"),)


def test_numbers_are_checked_by_the_request_with_its_own_messages(project: Project) -> None:
    settings = SceneSettings.from_overrides({"steps": 0, "alpha": "high"})  # read as stored
    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "a", 512, 512, (CAT,), overrides=settings.to_overrides()))
        with pytest.raises(RequestValidationError) as info:
            scene_to_request(session, scene)
    assert [str(p) for p in info.value.problems] == [
        "steps: 0 is not an integer between 1 and 1000",
        "alpha: 'high' is not a number between 0 and 1",
    ]


# --- project defaults and effective values ------------------------------------------------------


def test_fallback_is_a_new_projects_settings(project: Project) -> None:
    assert (FALLBACK.steps, FALLBACK.guidance, FALLBACK.alpha, FALLBACK.mis, FALLBACK.scheduler) == (
        50,
        7.5,
        0.75,
        0.36,
        "plms",
    )
    assert (FALLBACK.model_id, FALLBACK.negative_prompt, FALLBACK.width, FALLBACK.height) == ("demo", "", 512, 512)
    assert ProjectDefaults.default() is FALLBACK
    with project.read() as session:
        new = project_defaults(session)
    assert new == ProjectDefaults(**{**vars(FALLBACK), "name": new.name})


def test_defaults_of_the_settings_row(project: Project) -> None:
    with project.write() as session:
        session.delete(get_settings(session))
        session.flush()
        row = ProjectSettings(id=1, **dataclasses.asdict(DEFAULTS))
        session.add(row)
    with project.read() as session:
        assert project_defaults(session) == DEFAULTS


def test_effective_values_take_the_scene_first_then_the_project() -> None:
    assert SceneSettings().effective(DEFAULTS) == EffectiveSettings(25, 7.5, 0.75, 0.36, Scheduler.DDIM, "demo")
    settings = SceneSettings.from_overrides({"steps": 10, "mis": 0.0, "scheduler": "plms", "model_id": "sd15"})
    assert settings.effective(DEFAULTS) == EffectiveSettings(10, 7.5, 0.75, 0.0, Scheduler.PLMS, "sd15")


def test_an_unknown_project_scheduler_is_an_error_only_where_it_is_used() -> None:
    broken = ProjectDefaults(**{**vars(DEFAULTS), "scheduler": "euler"})
    with pytest.raises(RequestValidationError, match=r"^unknown scheduler 'euler'$"):
        SceneSettings().effective(broken)
    assert SceneSettings(scheduler=Scheduler.PLMS).effective(broken).scheduler is Scheduler.PLMS


def test_overridden() -> None:
    settings = SceneSettings.from_overrides({"steps": 25, "seed_mode": "random"})
    assert [name for name in OVERRIDE_KEYS if settings.overridden(name)] == ["steps", "seed_mode"]
    assert settings.has_sampler_overrides
    assert not SceneSettings(model_id="sd15", seed_mode="random").has_sampler_overrides
    with pytest.raises(ValueError, match="'width' is not a scene setting"):
        settings.overridden("width")


# --- editing -----------------------------------------------------------------------------------


def test_with_value_sets_and_clears_at_the_default() -> None:
    settings = SceneSettings().with_value("steps", 30, DEFAULTS).with_value("mis", 0.0, DEFAULTS)
    assert settings.to_overrides() == {"steps": 30, "mis": 0.0}
    settings = settings.with_value("steps", 25, DEFAULTS)  # the project default: no longer an override
    assert settings.to_overrides() == {"mis": 0.0}
    assert settings.with_value("mis", None, DEFAULTS).to_overrides() == {}
    assert settings.with_value("scheduler", "plms", DEFAULTS).scheduler is Scheduler.PLMS
    assert settings.with_value("scheduler", "ddim", DEFAULTS).scheduler is None
    assert settings.with_value("seed_mode", "random", DEFAULTS).to_overrides() == {"mis": 0.0, "seed_mode": "random"}
    assert settings.with_value("seed_mode", "random", DEFAULTS).with_value("seed_mode", "fixed", DEFAULTS) == settings
    assert settings.with_value("model_id", "demo", DEFAULTS).model_id is None
    with pytest.raises(ValueError, match="not a scene setting"):
        settings.with_value("width", 768, DEFAULTS)
    with pytest.raises(RequestValidationError, match="unknown scheduler"):
        settings.with_value("scheduler", "euler", DEFAULTS)


def test_use_project_defaults_keeps_the_model_and_seed_mode() -> None:
    settings = SceneSettings.from_overrides(
        {
            "steps": 10,
            "guidance": 3.0,
            "alpha": 0.5,
            "mis": 0.1,
            "scheduler": "plms",
            "model_id": "x",
            "seed_mode": "random",
        }
    )
    assert settings.without_sampler_overrides().to_overrides() == {"model_id": "x", "seed_mode": "random"}


def panel_set_override_today(
    overrides: Mapping[str, Any], name: str, value: Any, defaults: ProjectDefaults
) -> dict[str, Any]:
    """desktop/panels/scene_settings.py `_set_override` as it was before SceneSettings."""
    result = dict(overrides)
    default = "fixed" if name == "seed_mode" else getattr(defaults, name)
    if value == default:
        result.pop(name, None)
    else:
        result[name] = value
    return result


def panel_reset_today(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in overrides.items() if k not in SAMPLER_FIELDS}


PANEL_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "steps": st.sampled_from([10, 25, 30, 50]),
    "guidance": st.sampled_from([5.0, 7.5, 8.0]),
    "alpha": st.sampled_from([0.5, 0.75, 1.0]),
    "mis": st.sampled_from([0.0, 0.2, 0.36]),
    "scheduler": st.sampled_from([s.value for s in Scheduler]),
    "model_id": st.sampled_from(["demo", "sd15"]),
    "seed_mode": st.sampled_from(SEED_MODES),
}
PANEL_ACTIONS: st.SearchStrategy[tuple[str, Any]] = st.one_of(
    st.just(("reset", None)),
    *[st.tuples(st.just(name), values) for name, values in PANEL_VALUES.items()],
)


@given(st.lists(PANEL_ACTIONS, max_size=12))
def test_editing_stores_what_the_panel_stored(actions: list[tuple[str, Any]]) -> None:
    today: dict[str, Any] = {}
    settings = SceneSettings()
    for name, value in actions:
        if name == "reset":
            today, settings = panel_reset_today(today), settings.without_sampler_overrides()
        else:
            today, settings = (
                panel_set_override_today(today, name, value, DEFAULTS),
                settings.with_value(name, value, DEFAULTS),
            )
        assert settings.to_overrides() == today
        assert json.dumps(settings.to_overrides(), sort_keys=True) == json.dumps(today, sort_keys=True)
        assert SceneSettings.from_overrides(today) == settings


# --- restoring a render's settings --------------------------------------------------------------


def restore_layout_today(
    request: RenderRequest, defaults: ProjectDefaults, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """desktop/main_window.py `restore_layout`'s overrides as it was before SceneSettings."""
    result = {k: v for k, v in overrides.items() if k in ("seed_mode", "model_id")}
    for name in ("steps", "guidance", "alpha", "mis"):
        if getattr(request, name) != getattr(defaults, name):
            result[name] = getattr(request, name)
    if request.scheduler.value != defaults.scheduler:
        result["scheduler"] = request.scheduler.value
    return result


def test_from_request_overrides_only_what_differs_and_keeps_model_and_seed_mode() -> None:
    request = RenderRequest(
        "a", steps=25, guidance=9.0, alpha=0.75, mis=0.0, scheduler=Scheduler.PLMS, model_id="sd15"
    )
    keep = SceneSettings(steps=40, model_id="other", seed_mode="random")
    restored = SceneSettings.from_request(request, DEFAULTS, keep=keep)
    assert restored == SceneSettings(
        guidance=9.0, mis=0.0, scheduler=Scheduler.PLMS, model_id="other", seed_mode="random"
    )
    assert restored.to_overrides() == restore_layout_today(request, DEFAULTS, keep.to_overrides())
    assert SceneSettings.from_request(request, DEFAULTS).model_id is None


SCENE_SETTINGS = st.builds(
    SceneSettings,
    steps=st.none() | st.integers(1, 1000) | st.sampled_from([25, 50]),
    guidance=st.none() | st.floats(0.0, 50.0) | st.just(7.5),
    alpha=st.none() | st.floats(0.0, 1.0) | st.just(0.75),
    mis=st.none() | st.floats(0.0, 1.0) | st.just(0.36),
    scheduler=st.none() | st.sampled_from(Scheduler),
    model_id=st.none() | st.sampled_from(["demo", "sd15", "other"]),
    seed_mode=st.sampled_from(SEED_MODES),
)
PROJECT_DEFAULTS = st.builds(
    ProjectDefaults,
    name=st.just("p"),
    steps=st.integers(1, 1000) | st.sampled_from([25, 50]),
    guidance=st.floats(0.0, 50.0) | st.just(7.5),
    alpha=st.floats(0.0, 1.0) | st.just(0.75),
    mis=st.floats(0.0, 1.0) | st.just(0.36),
    scheduler=st.sampled_from([s.value for s in Scheduler]),
    negative_prompt=st.sampled_from(["", "lowres"]),
    model_id=st.sampled_from(["demo", "sd15"]),
    width=st.just(512),
    height=st.just(512),
)


def set_defaults(session: Session, defaults: ProjectDefaults) -> None:
    row = get_settings(session)
    for name, value in vars(defaults).items():
        setattr(row, name, value)


def test_from_request_reverses_scene_to_request(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "a cat on a mat", 512, 512, (CAT,), seed=5))

        @settings(max_examples=150, deadline=None)
        @given(original=SCENE_SETTINGS, defaults=PROJECT_DEFAULTS)
        def check(original: SceneSettings, defaults: ProjectDefaults) -> None:
            set_defaults(session, defaults)
            scene.overrides = original.to_overrides()
            request = scene_to_request(session, scene)
            restored = SceneSettings.from_request(request, defaults, keep=original)
            assert restored.effective(defaults) == original.effective(defaults)
            assert (restored.model_id, restored.seed_mode) == (original.model_id, original.seed_mode)
            assert restored.to_overrides() == restore_layout_today(request, defaults, original.to_overrides())
            scene.overrides = restored.to_overrides()
            assert scene_to_request(session, scene) == request

        check()


# --- scene_to_request is unchanged --------------------------------------------------------------


def scene_to_request_today(session: Session, scene: Scene) -> RenderRequest:
    """projects/scenes.py `scene_to_request` as it was before SceneSettings."""
    settings = get_settings(session)
    overrides = scene.overrides or {}
    unknown = sorted(set(overrides) - set(OVERRIDE_KEYS))
    if unknown:
        raise RequestValidationError([Problem("overrides", f"unknown scene overrides: {', '.join(unknown)}")])
    scheduler_name = overrides.get("scheduler", settings.scheduler)
    try:
        scheduler = Scheduler(scheduler_name)
    except ValueError:
        raise RequestValidationError([Problem("scheduler", f"unknown scheduler {scheduler_name!r}")]) from None
    return RenderRequest(
        prompt=scene.caption,
        negative_prompt=scene.negative_prompt if scene.negative_prompt is not None else settings.negative_prompt,
        width=scene.width,
        height=scene.height,
        seed=scene.seed,
        steps=overrides.get("steps", settings.steps),
        guidance=overrides.get("guidance", settings.guidance),
        alpha=overrides.get("alpha", settings.alpha),
        mis=overrides.get("mis", settings.mis),
        scheduler=scheduler,
        model_id=overrides.get("model_id", settings.model_id),
        instances=tuple(instance_spec(inst) for inst in scene.instances),
    )


# "loras" is new (older versions refused it as unknown): its own tests are below.
STORED_OVERRIDES = st.dictionaries(
    st.sampled_from([*(key for key in OVERRIDE_KEYS if key != "loras"), "stepz"]),
    st.integers(-1, 2000) | st.floats(-1.0, 60.0) | st.sampled_from(["plms", "ddim", "euler", "", "sd15", "random"]),
    max_size=4,
)


def outcome(make: Any) -> RenderRequest | tuple[Problem, ...]:
    try:
        result: RenderRequest = make()
    except RequestValidationError as exc:
        return exc.problems
    return result


def test_scene_to_request_behaves_as_before(project: Project) -> None:
    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "a cat on a mat", 512, 512, (CAT,), seed=5))

        @settings(max_examples=200, deadline=None)
        @given(
            overrides=STORED_OVERRIDES,
            defaults=PROJECT_DEFAULTS,
            negative=st.none() | st.just("blurry"),
            scheduler=st.sampled_from(["plms", "ddim", "euler"]),
        )
        def check(overrides: dict[str, Any], defaults: ProjectDefaults, negative: str | None, scheduler: str) -> None:
            set_defaults(session, defaults)
            get_settings(session).scheduler = scheduler
            scene.overrides, scene.negative_prompt = overrides, negative
            if overrides.get("seed_mode", "fixed") not in SEED_MODES and set(overrides) <= set(OVERRIDE_KEYS):
                # New: an unknown seed mode was ignored (read as "fixed"); now it is refused.
                with pytest.raises(RequestValidationError, match="unknown seed mode"):
                    scene_to_request(session, scene)
                return
            assert outcome(lambda: scene_to_request(session, scene)) == outcome(
                lambda: scene_to_request_today(session, scene)
            )

        check()


def test_random_seed_mode_draws_a_seed_per_render(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("projects.scenes.random_seed", lambda: 777)
    with project.write() as session:
        fixed = add_scene(session, SceneLayout("fixed", "a", 512, 512, (CAT,), seed=5))
        drawn = add_scene(
            session, SceneLayout("drawn", "a", 512, 512, (CAT,), seed=5, overrides={"seed_mode": "random"})
        )
        assert queue_scene(session, fixed).request.seed == 5
        assert queue_scene(session, drawn).request.seed == 777
        assert queue_scene(session, drawn, seed=9).request.seed == 9


# --- LoRAs ---------------------------------------------------------------------------------------

INK = LoraWeight("ink", 0.8)
DETAIL = LoraWeight("detail", -0.5)


def test_a_scenes_loras_are_typed_stored_only_when_set_and_kept_by_use_project_defaults() -> None:
    settings = SceneSettings.from_overrides({"steps": 9, "loras": [{"name": "ink", "weight": 0.8}]})
    assert settings.loras == (INK,)
    assert settings.overridden("loras") and not SceneSettings().overridden("loras")
    assert "loras" not in SceneSettings().to_overrides()
    assert settings.without_sampler_overrides().loras == (INK,)
    assert settings.effective(DEFAULTS).loras == (INK,)
    assert SceneSettings().effective(DEFAULTS).loras == ()
    assert settings.with_value("loras", [INK, DETAIL], DEFAULTS).loras == (INK, DETAIL)
    assert settings.with_value("loras", None, DEFAULTS).to_overrides() == {"steps": 9}
    request = RenderRequest(prompt="x", loras=(DETAIL,))
    assert SceneSettings.from_request(request, DEFAULTS, keep=settings).loras == (INK,)  # the scene's, as the model


@pytest.mark.parametrize(
    ("loras", "expected"),
    [
        (None, "loras: the scene override is empty (null)"),
        ("ink", "loras: must be a tuple of LoraWeight"),
        ([{"name": "ink"}], "loras[0].weight must be a finite number"),
        ([{"name": "ink", "weight": 9}], "loras[0]: LoRA 'ink': weight 9.0 is not a number between -4 and 4"),
        ([{"name": "a/b", "weight": 1}], "loras[0]: LoRA name 'a/b' must be"),
        ([{"name": "ink", "weight": 1}, {"name": "ink", "weight": 2}], "loras[1]: LoRA 'ink' is listed twice"),
        ([{"name": "ink", "weight": 1, "x": 0}], "unknown"),
        ([7], "loras[0]"),
    ],
)
def test_bad_stored_loras_are_refused_naming_the_entry(loras: object, expected: str) -> None:
    problems = problems_of({"loras": loras})
    assert any(expected in p.message for p in problems), problems


def test_scene_to_request_carries_the_scenes_loras(project: Project) -> None:
    from projects.scene_data import SceneData, scene_request

    with project.write() as session:
        scene = add_scene(session, SceneLayout("s", "a cat on a mat", 512, 512, (CAT,), seed=5))
        scene.overrides = {"loras": [INK.to_dict(), DETAIL.to_dict()]}
        request = scene_to_request(session, scene)
        defaults = project_defaults(session)
    assert request.loras == (INK, DETAIL)
    assert RenderRequest.from_json(request.to_json()).loras == (INK, DETAIL)
    # The live preview builds its request from the scene's data: the same LoRAs (the two are kept in step).
    data = SceneData(
        scene_id=1, name="s", caption="a cat on a mat", seed=5, settings=SceneSettings(loras=(INK, DETAIL))
    )
    assert scene_request(data, defaults).loras == (INK, DETAIL)
