"""LoRAs on the tiny pipeline: built here with peft, saved in diffusers and kohya format, applied through the
runner with a weight each, switched between jobs without reloading the base, and taken off cleanly."""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file

from engine.checkpoint import adapter_part
from engine.loras import LoraLibrary, lora_hash_key
from engine.pipeline import InstanceDiffusionPipeline
from engine.request import InstanceKind, InstanceSpec, LoraWeight, RenderRequest
from engine.runner import LoadedModel, ModelFilesError, RenderResult, Runner
from tests.engine.tiny_sd import build_tiny_sd, tiny_pipeline

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
RANK = 4

# Grounding acts (one box, in the first step), but no chains are merged (mis 0): nothing comes from the chain
# cache, so equal settings give bit-identical images. 64x64 is the tiny model's smallest canvas.
REQUEST = RenderRequest(
    prompt="a red circle",
    width=64,
    height=64,
    steps=2,
    mis=0.0,
    model_id="tiny",
    instances=(InstanceSpec("a blue square", InstanceKind.BOX, box=(0.1, 0.2, 0.6, 0.7)),),
)


def lora_state(seed: int, *, text_encoder: bool) -> dict[str, torch.Tensor]:
    """A random rank-4 LoRA for the tiny SD1.5 UNet (and text encoder), in diffusers' file naming."""
    parts = build_tiny_sd(seed=seed)
    config = {"r": RANK, "lora_alpha": RANK, "init_lora_weights": False}  # alpha = rank: scale 1, as diffusers assumes
    unet = inject_adapter_in_model(LoraConfig(target_modules=UNET_TARGETS, **config), parts.unet)  # type: ignore[arg-type]
    state = {f"unet.{k}": v for k, v in get_peft_model_state_dict(unet).items()}
    if text_encoder:
        encoder = inject_adapter_in_model(LoraConfig(target_modules=TEXT_TARGETS, **config), parts.text_encoder)  # type: ignore[arg-type]
        state |= {f"text_encoder.{k}": v for k, v in get_peft_model_state_dict(encoder).items()}
    return {k: v.detach().contiguous() for k, v in state.items()}


def to_kohya(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same LoRA under kohya's names: `lora_unet_<path with _>.lora_down.weight`, `.lora_up.weight`, `.alpha`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        component, _, rest = key.partition(".")
        module, _, kind = rest.partition(".lora_")
        prefix = "lora_unet_" if component == "unet" else "lora_te_text_model_"
        stem = prefix + module.replace(".", "_")
        out[f"{stem}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = value
        out[f"{stem}.alpha"] = torch.tensor(float(RANK))
    return out


@pytest.fixture(scope="module")
def lora_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("loras")
    files = {
        "unet only": (lora_state(11, text_encoder=False), "a.safetensors"),
        "both": (lora_state(12, text_encoder=True), "b.safetensors"),
    }
    paths: dict[str, Path] = {}
    for name, (state, file) in files.items():
        save_file(state, folder / file)
        paths[name] = folder / file
    save_file(to_kohya(files["both"][0]), folder / "b_kohya.safetensors")
    paths["both kohya"] = folder / "b_kohya.safetensors"
    return paths


@dataclasses.dataclass
class Counted:
    """A runner on one tiny model whose provider counts how often it loads the base."""

    runner: Runner
    loads: list[LoadedModel]

    def image(self, *loras: tuple[str, float], request: RenderRequest = REQUEST) -> npt.NDArray[np.int16]:
        return self.render(*loras, request=request).image.astype(np.int16)

    def render(self, *loras: tuple[str, float], request: RenderRequest = REQUEST) -> RenderResult:
        wanted = tuple(LoraWeight(name, weight) for name, weight in loras)
        return self.runner.render(dataclasses.replace(request, loras=wanted))


@functools.cache
def _pristine() -> InstanceDiffusionPipeline:
    """The tiny pipeline as built, never rendered with or given a LoRA: what every fresh model is a copy of."""
    return tiny_pipeline()


def fresh_pipeline() -> InstanceDiffusionPipeline:
    """A tiny pipeline that never had a LoRA: deep copies of the pristine one's models (a quarter of a build)."""
    pristine = _pristine()
    vae, text_encoder, unet = copy.deepcopy((pristine.vae, pristine.text_encoder, pristine.unet))
    return InstanceDiffusionPipeline(vae, text_encoder, pristine.tokenizer, unet)


def counted_runner(files: dict[str, Path]) -> Counted:
    """A runner whose model (a fresh tiny pipeline, made on the first render) can apply `files`."""
    loads: list[LoadedModel] = []

    def provide(model_id: str) -> LoadedModel:
        model = LoadedModel(fresh_pipeline(), {"tiny": "0" * 64}, loras=LoraLibrary(files))
        loads.append(model)
        return model

    return Counted(Runner(provide), loads)


@pytest.fixture
def make_runner(lora_files: dict[str, Path]) -> Callable[..., Counted]:
    def make(files: dict[str, Path] | None = None) -> Counted:
        return counted_runner(files or lora_files)

    return make


@pytest.fixture(scope="module")
def base_image() -> npt.NDArray[np.int16]:
    """REQUEST rendered by a fresh model that never had a LoRA: what every "the base exactly" check compares with
    (the tiny pipeline is built deterministically, so any fresh one renders this)."""
    return counted_runner({}).image()


def difference(a: npt.NDArray[np.int16], b: npt.NDArray[np.int16]) -> float:
    return float(np.abs(a - b).mean())


def test_a_lora_changes_the_image_by_its_weight_and_weight_zero_is_the_base(
    make_runner: Callable[..., Counted], base_image: npt.NDArray[np.int16]
) -> None:
    counted = make_runner()
    differences = [difference(counted.image(("unet only", w)), base_image) for w in (0.0, 0.25, 0.5, 1.0)]
    assert differences[0] == 0.0
    assert 0 < differences[1] < differences[2] < differences[3]
    assert difference(counted.image(("unet only", -1.0)), base_image) > 0  # a negative weight subtracts it


def test_kohya_and_diffusers_files_of_one_lora_render_alike(
    make_runner: Callable[..., Counted], base_image: npt.NDArray[np.int16]
) -> None:
    counted = make_runner()
    diffusers_image = counted.image(("both", 0.8))
    kohya_image = counted.image(("both kohya", 0.8))
    assert difference(diffusers_image, base_image) > 0
    assert np.abs(diffusers_image - kohya_image).max() <= 1  # uint8 rounding of a float difference < 1e-5


def test_two_loras_at_once_differ_from_each_alone(make_runner: Callable[..., Counted]) -> None:
    counted = make_runner()
    both = counted.image(("unet only", 1.0), ("both", 1.0))
    assert difference(both, counted.image(("unet only", 1.0))) > 0
    assert difference(both, counted.image(("both", 1.0))) > 0


def test_switching_between_jobs_equals_fresh_renders_without_reloading_the_base(
    make_runner: Callable[..., Counted], base_image: npt.NDArray[np.int16]
) -> None:
    counted = make_runner()
    a = counted.render(("unet only", 0.7)).image
    b = counted.render(("both", 1.3)).image
    after = counted.image()
    assert len(counted.loads) == 1  # one base load for all three jobs
    assert counted.loads[0].loras.loaded == 2
    assert np.array_equal(after, base_image)  # bit-identical to a model that never had a LoRA: they came off cleanly
    assert np.array_equal(a, make_runner().render(("unet only", 0.7)).image)
    assert np.array_equal(b, make_runner().render(("both", 1.3)).image)


def test_the_text_encoder_computes_exactly_what_it_did_once_loras_are_off(lora_files: dict[str, Path]) -> None:
    """Below the runner: the adapter layers switched off compute exactly what the base did."""
    pipeline = fresh_pipeline()
    tokens = torch.tensor([[49406, 320, 49407]])
    with torch.no_grad():
        plain = pipeline.text_encoder(tokens).last_hidden_state
        library = LoraLibrary(lora_files)
        library.activate(pipeline, (LoraWeight("both", 1.0),))
        changed = pipeline.text_encoder(tokens).last_hidden_state
        library.activate(pipeline, ())
        again = pipeline.text_encoder(tokens).last_hidden_state
    assert not torch.equal(plain, changed)
    assert torch.equal(plain, again)


def test_the_grounding_layers_are_untouched(make_runner: Callable[..., Counted]) -> None:
    counted = make_runner()
    counted.render()
    unet = counted.loads[0].pipeline.unet
    grounding = {k: v.clone() for k, v in unet.state_dict().items() if adapter_part(k)}
    counted.render(("unet only", 1.0), ("both", 1.0))
    wrapped = [name for name, module in unet.named_modules() if isinstance(module, BaseTunerLayer)]
    assert wrapped and not [name for name in wrapped if adapter_part(name + ".weight")]
    after = {k: v for k, v in unet.state_dict().items() if adapter_part(k)}
    assert after.keys() == grounding.keys()
    assert all(torch.equal(after[k], grounding[k]) for k in grounding)


def test_the_chain_cache_is_never_shared_between_lora_sets(make_runner: Callable[..., Counted]) -> None:
    counted = make_runner()
    merging = dataclasses.replace(REQUEST, mis=0.5)  # chain 1 merges after one step and is cached
    assert counted.render(request=merging).reused_instances == ()
    assert counted.render(request=merging).reused_instances == (0,)  # the same weights: reused
    assert counted.render(("unet only", 1.0), request=merging).reused_instances == ()
    assert counted.render(("unet only", 0.5), request=merging).reused_instances == ()
    assert counted.render(("unet only", 1.0), request=merging).reused_instances == (0,)


def test_the_render_names_each_lora_file_by_hash(
    make_runner: Callable[..., Counted], lora_files: dict[str, Path]
) -> None:
    from engine.weights_io import sha256_file

    result = make_runner().render(("unet only", 0.5), ("both", 0.0))
    assert result.model_hashes[lora_hash_key("unet only")] == sha256_file(lora_files["unet only"])
    assert result.model_hashes[lora_hash_key("both")] == sha256_file(lora_files["both"])
    assert result.request.loras == (LoraWeight("unet only", 0.5), LoraWeight("both", 0.0))


# --- bad files -----------------------------------------------------------------------------------


def _write(kind: str, folder: Path, good: Path) -> Path:
    """A LoRA file that cannot be used, of one kind."""
    path = folder / f"{kind}.safetensors"
    state = load_file(good)
    if kind == "garbage":
        path.write_bytes(b"\x00\x01 not a safetensors file" * 10)
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle named safetensors":
        torch.save(state, path)
    elif kind == "pickle":
        path = folder / "lora.ckpt"
        torch.save(state, path)
    elif kind == "wrong shapes":
        save_file({k: torch.zeros(v.shape[0] + 1, *v.shape[1:]) for k, v in state.items()}, path)
    elif kind == "unknown layers":
        save_file({f"unet.no_such_block.{k.partition('.')[2]}": v for k, v in state.items()}, path)
    elif kind == "grounding layers":
        key = "unet.down_blocks.1.attentions.0.transformer_blocks.0.fuser.attn.to_q"
        save_file(
            state | {f"{key}.lora_A.weight": torch.zeros(RANK, 32), f"{key}.lora_B.weight": torch.zeros(32, RANK)},
            path,
        )
    elif kind == "not a lora":
        save_file({"unet.conv_in.weight": torch.zeros(4, 4)}, path)
    elif kind == "nan":
        save_file({k: torch.full_like(v, float("nan")) for k, v in state.items()}, path)
    elif kind == "missing":
        pass
    return path


BAD_KINDS = {
    "garbage": "not a readable safetensors file",
    "truncated": "not a readable safetensors file",
    "empty": "not a readable safetensors file",
    "pickle named safetensors": "pickled files (.pt, .ckpt, .bin) can run code",
    "pickle": "pickled files (.pt, .ckpt, .bin) can run code",
    "wrong shapes": "does not fit this model",
    "unknown layers": "does not fit this model",
    "grounding layers": "changes InstanceDiffusion's grounding layers",
    "not a lora": "not a LoRA file",
    "nan": "NaN/inf",
    "missing": "file not found",
}


@pytest.fixture(scope="module")
def bad_files(lora_files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    return {kind: _write(kind, folder, lora_files["unet only"]) for kind in BAD_KINDS}


@pytest.fixture(scope="module")
def refusing(lora_files: dict[str, Path], bad_files: dict[str, Path]) -> Counted:
    """One model for every kind of bad file: each refusal must leave it as clean as a model that never had a
    LoRA, whatever the refusals before it left behind (stricter than a fresh model per kind)."""
    return counted_runner({"unet only": lora_files["unet only"]} | {f"bad {k}": p for k, p in bad_files.items()})


@pytest.mark.parametrize("kind", sorted(BAD_KINDS))
def test_a_bad_lora_file_is_refused_in_one_line_naming_it_and_leaves_the_model_clean(
    kind: str, refusing: Counted, bad_files: dict[str, Path], base_image: npt.NDArray[np.int16]
) -> None:
    bad = bad_files[kind]
    with pytest.raises(ModelFilesError) as info:
        refusing.render(("unet only", 1.0), (f"bad {kind}", 1.0))
    message = str(info.value)
    assert "\n" not in message and len(message) < 500, message
    assert message.startswith(f"LoRA 'bad {kind}' ({bad}): ") and BAD_KINDS[kind] in message, message
    assert np.array_equal(refusing.image(), base_image)  # nothing half-loaded stays active
    assert len(refusing.loads) == 1


def test_a_lora_not_in_the_settings_is_refused_saying_how_to_add_it(make_runner: Callable[..., Counted]) -> None:
    with pytest.raises(ModelFilesError, match=r"LoRA 'nope' is not in the model settings \(the LoRAs are: both, "):
        make_runner().render(("nope", 1.0))
