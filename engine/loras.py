"""LoRAs: SD1.5 LoRA files (diffusers or kohya format) applied to a loaded model with a weight each.

The model settings name the files (`ModelSettings.loras`); a request names the ones it wants with their
weights (`RenderRequest.loras`). A `LoraLibrary` belongs to one loaded model: it reads each file once
(safetensors only: a pickle could run code), loads it into the UNet and the text encoder as a peft adapter
named by the file's content hash, and before every render makes exactly the request's LoRAs active at
their weights. Switching between jobs only changes which adapters are active and how strongly; the base
weights are never touched or reloaded, and with no LoRA active every adapter layer is switched off, so the
model computes exactly what it did before any LoRA was loaded.

The format is diffusers' business: its own `lora_state_dict` converts kohya keys, and its peft integration
loads the result. Target modules come from the file's keys as full module paths (the file's own peft
metadata is not used: its short names such as "to_q" would also match the attention inside the grounding
fusers), and a LoRA that names any of InstanceDiffusion's added parts is refused, so grounding is never
changed by a LoRA.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch

from engine.checkpoint import adapter_part
from engine.request import LoraWeight
from engine.weights_io import WeightFileError, check_finite, read_safetensors, sha256_file

__all__ = ["LoraError", "LoraLibrary", "lora_hash_key"]

log = logging.getLogger(__name__)

_PICKLE_SUFFIXES: Final = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
_UNET: Final = "unet."
_TEXT_ENCODER: Final = "text_encoder."


class LoraError(Exception):
    """A LoRA could not be used; `str()` is one line naming the LoRA and its file."""


def lora_hash_key(name: str) -> str:
    """The key a LoRA's file hash has in a render's model hashes (next to the base's)."""
    return f"lora:{name}"


@dataclass(frozen=True)
class _Adapter:
    """A LoRA file loaded into the model: the peft adapter's name and which components it changes."""

    adapter: str
    sha256: str
    unet: bool
    text_encoder: bool


class LoraLibrary:
    """The LoRA files a loaded model can apply, by name, and the adapters already loaded into it."""

    def __init__(self, files: Mapping[str, Path] | None = None) -> None:
        self.files: dict[str, Path] = dict(files or {})
        self._adapters: dict[str, _Adapter] = {}  # by content hash: one file under two names loads once
        self._hashes: dict[Path, tuple[tuple[int, int], str]] = {}  # path -> ((size, mtime), sha256)
        self._active: tuple[tuple[str, float], ...] = ()  # (adapter, weight) as last applied
        self._base_identity: str | None = None
        self._stale = False  # a load changed which adapters are active: switch on the next activate

    @property
    def loaded(self) -> int:
        """How many LoRA files are loaded into the model (active or not)."""
        return len(self._adapters)

    def activate(self, pipeline: Any, loras: Sequence[LoraWeight]) -> dict[str, str]:
        """Make exactly `loras` active on `pipeline` at their weights (none: the base alone), loading files not
        loaded yet. Returns each LoRA's file hash under `lora_hash_key(name)`, for the render's metadata.

        Sets `pipeline.identity` (the chain cache's model key) to the base's plus the active LoRAs, and drops
        the cached text encodings when the text encoder's LoRAs change. Raises LoraError."""
        if self._base_identity is None:
            self._base_identity = str(getattr(pipeline, "identity", ""))
        hashes: dict[str, str] = {}
        wanted: list[tuple[_Adapter, float]] = []
        for lora in loras:
            adapter = self._adapter(pipeline, lora.name)
            hashes[lora_hash_key(lora.name)] = adapter.sha256
            if lora.weight != 0:  # weight 0 is the base exactly, not a LoRA multiplied by zero
                wanted.append((adapter, float(lora.weight)))
        active = tuple((adapter.adapter, weight) for adapter, weight in wanted)
        if active != self._active or self._stale:
            self._switch(pipeline, wanted)
            self._active, self._stale = active, False
        identity = self._base_identity
        if active:
            identity = json.dumps([identity, [[a.sha256, w] for a, w in wanted]])
        pipeline.identity = identity
        return hashes

    # --- loading ---------------------------------------------------------------------------------

    def _adapter(self, pipeline: Any, name: str) -> _Adapter:
        path = self.files.get(name)
        if path is None:
            known = ", ".join(sorted(self.files)) or "none are configured"
            raise LoraError(
                f"LoRA {name!r} is not in the model settings (the LoRAs are: {known}); add it with "
                f"`main.py models set --lora {name}=PATH`"
            )
        try:
            sha = self._sha256(path)
        except (OSError, WeightFileError) as exc:
            raise LoraError(f"LoRA {name!r} ({path}): {_reason(exc)}") from exc
        adapter = self._adapters.get(sha)
        if adapter is None:
            adapter = self._load(pipeline, name, path, sha)
            self._adapters[sha] = adapter
        return adapter

    def _sha256(self, path: Path) -> str:
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        known = self._hashes.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        sha = sha256_file(path)
        self._hashes[path] = (stamp, sha)
        return sha

    def _load(self, pipeline: Any, name: str, path: Path, sha: str) -> _Adapter:
        def fail(reason: str) -> LoraError:
            return LoraError(f"LoRA {name!r} ({path}): {reason}")

        state, alphas = _read(path, fail)
        adapter = f"lora_{sha[:16]}"
        unet_keys = [k for k in state if k.startswith(_UNET)]
        text_keys = [k for k in state if k.startswith(_TEXT_ENCODER)]
        grounding = sorted({_module_of(k[len(_UNET) :]) for k in unet_keys if adapter_part(k[len(_UNET) :])})
        if grounding:
            raise fail(f"it changes InstanceDiffusion's grounding layers ({grounding[0]}), not only SD1.5's")
        if not unet_keys and not text_keys:
            raise fail("it holds no SD1.5 LoRA weights (no UNet or text encoder layers)")
        try:
            _inject(pipeline, state, alphas, adapter, unet=bool(unet_keys), text_encoder=bool(text_keys))
        except Exception as exc:  # diffusers and peft raise many kinds here; every one means "does not fit"
            _delete(pipeline, adapter)
            raise fail(f"it does not fit this model ({_reason(exc)})") from exc
        self._stale = True  # loading may leave the new adapter active, whatever the request says
        log.info("loaded LoRA %r from %s (%d tensors)", name, path, len(state))
        return _Adapter(adapter, sha, bool(unet_keys), bool(text_keys))

    # --- switching -------------------------------------------------------------------------------

    def _switch(self, pipeline: Any, wanted: Sequence[tuple[_Adapter, float]]) -> None:
        unet_set = [(a.adapter, w) for a, w in wanted if a.unet]
        text_set = [(a.adapter, w) for a, w in wanted if a.text_encoder]
        if any(a.unet for a in self._adapters.values()):
            _set(pipeline.unet, unet_set, text_encoder=False)
        if any(a.text_encoder for a in self._adapters.values()):
            _set(pipeline.text_encoder, text_set, text_encoder=True)
        pipeline.clear_text_caches()  # encodings made with other text encoder LoRAs (cheap to redo)


def _inject(
    pipeline: Any,
    state: dict[str, torch.Tensor],
    alphas: dict[str, float] | None,
    adapter: str,
    *,
    unet: bool,
    text_encoder: bool,
) -> None:
    """Load one LoRA's layers into the UNet and the text encoder as the peft adapter `adapter`."""
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin as Loader

    with warnings.catch_warnings():
        # peft warns when a model with an adapter gets another: that is what a library of LoRAs is.
        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
        if unet:
            Loader.load_lora_into_unet(state, alphas, pipeline.unet, adapter_name=adapter)
        if text_encoder:
            Loader.load_lora_into_text_encoder(
                state, alphas, pipeline.text_encoder, prefix="text_encoder", adapter_name=adapter
            )


def _set(module: torch.nn.Module, adapters: Sequence[tuple[str, float]], *, text_encoder: bool) -> None:
    """Activate `adapters` at their weights on one component, or switch every adapter layer off."""
    from diffusers.loaders.lora_base import (
        disable_lora_for_text_encoder,
        enable_lora_for_text_encoder,
        set_adapters_for_text_encoder,
    )

    names = [name for name, _ in adapters]
    weights = [weight for _, weight in adapters]
    if text_encoder:
        if names:
            set_adapters_for_text_encoder(names, module, weights)  # type: ignore[arg-type]
            enable_lora_for_text_encoder(module)  # type: ignore[arg-type]
        else:
            disable_lora_for_text_encoder(module)  # type: ignore[arg-type]
    elif names:
        module.set_adapters(names, weights)  # type: ignore[operator]
        module.enable_lora()  # type: ignore[operator]
    else:
        module.disable_lora()  # type: ignore[operator]


def _delete(pipeline: Any, adapter: str) -> None:
    """Remove a half-loaded adapter, so a LoRA that did not fit leaves the model as it was."""
    from diffusers.utils.peft_utils import delete_adapter_layers

    for module in (pipeline.unet, pipeline.text_encoder):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Adapter .* was active which is now deleted")
                delete_adapter_layers(module, adapter)  # type: ignore[no-untyped-call]
            config = getattr(module, "peft_config", None)
            if isinstance(config, dict):
                config.pop(adapter, None)
        except Exception:  # nothing was injected there
            log.debug("no adapter %s to remove from %s", adapter, type(module).__name__)


# --- reading files -------------------------------------------------------------------------------


def _read(path: Path, fail: Callable[[str], LoraError]) -> tuple[dict[str, torch.Tensor], dict[str, float] | None]:
    """The file's tensors in diffusers' naming (kohya keys converted) and kohya's alphas, if any."""
    if path.suffix.lower() in _PICKLE_SUFFIXES or _is_pickle(path):
        raise fail("LoRA files must be .safetensors; pickled files (.pt, .ckpt, .bin) can run code and are not read")
    try:
        state = read_safetensors(path)
        check_finite(state, path)
    except WeightFileError as exc:
        raise fail(exc.reason) from exc
    if not state:
        raise fail("the file holds no tensors")
    if not all("lora" in key or key.endswith(".alpha") for key in state):
        odd = next(key for key in state if "lora" not in key and not key.endswith(".alpha"))
        raise fail(f"not a LoRA file (tensor {odd!r} is not a LoRA weight)")
    from diffusers.loaders.lora_pipeline import StableDiffusionLoraLoaderMixin

    try:
        converted, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(state)
    except Exception as exc:  # the converter raises ValueError, KeyError... on keys it does not know
        raise fail(f"not an SD1.5 LoRA in diffusers or kohya format ({_reason(exc)})") from exc
    return _text_encoder_keys_as_peft(dict(converted)), alphas


def _text_encoder_keys_as_peft(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Kohya text encoder keys come out of diffusers' converter in its old naming ("to_q_lora.down"), which its
    text encoder loader recognises only when the LoRA also has "to_out" layers: name them as peft does."""
    from diffusers.utils.state_dict_utils import DIFFUSERS_OLD_TO_PEFT, convert_state_dict

    old = {k: v for k, v in state.items() if k.startswith(_TEXT_ENCODER) and ("_lora.down." in k or "_lora.up." in k)}
    if not old:
        return state
    rest = {k: v for k, v in state.items() if k not in old}
    converted: dict[str, torch.Tensor] = convert_state_dict(old, DIFFUSERS_OLD_TO_PEFT)  # type: ignore[no-untyped-call]
    return rest | converted


def _is_pickle(path: Path) -> bool:
    """A torch zip archive or a raw pickle, whatever its name says."""
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return head in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def _module_of(key: str) -> str:
    return key.split(".lora")[0]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, WeightFileError):
        return exc.reason
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
