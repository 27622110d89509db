"""Model ids to loaded pipelines, for the runner.

- "sd15": the user's Stable Diffusion 1.5 and converted InstanceDiffusion adapter (engine.model_settings).
- "demo": the small model bundled in resources/demo/model, trained on the synthetic shape world.
- a fine-tuned base's name (`ModelSettings.bases`): that SD1.5-architecture checkpoint with the adapter.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from diffusers.schedulers.scheduling_pndm import PNDMScheduler

from engine.demo import limits
from engine.devices import select_device, select_dtype
from engine.loading import load_components
from engine.loras import LoraLibrary
from engine.model_ids import DEMO, SD15, unknown_model_message
from engine.model_settings import ModelSettings
from engine.models.builder import InstanceUNetConfig
from engine.pipeline import InstanceDiffusionPipeline
from engine.runner import LoadedModel, ModelFilesError, ModelProvider
from resources import resource_path

DEMO_MODEL_DIR = resource_path("demo", "model")


def load_demo_model(folder: Path = DEMO_MODEL_DIR) -> LoadedModel:
    """The bundled demo model, on the CPU in fp32 (it is small; that is what it is for).

    It renders every canvas at its own scale (engine.demo.limits.render_size: the canvas's aspect ratio,
    the shorter side at the size of the images it learned), not at the canvas's pixel size. The folder may
    be in the app's layout (the bundled one) or a diffusers pipeline folder (`save_pretrained`)."""
    from engine.demo.model import PIPELINE_INDEX, load_demo_pipeline
    from engine.weights_io import sha256_file

    if not (folder / "config.json").exists() and not (folder / PIPELINE_INDEX).exists():
        raise ModelFilesError(
            f"the bundled demo model is not in this copy of the app ({folder}); configure Stable Diffusion 1.5 "
            "and InstanceDiffusion (Settings -> Models, or `main.py models set`) and use the model 'sd15'"
        )
    pipeline = load_demo_pipeline(folder)
    # One weights file per component in either layout: at the top (the app's) or in its folder (diffusers').
    weights = sorted([*folder.glob("*.safetensors"), *folder.glob("*/*.safetensors")])
    hashes = {path.parent.name if path.parent != folder else path.stem: sha256_file(path) for path in weights}
    side = int(pipeline.vae.config.get("sample_size", limits.NATIVE_SIDE))
    return LoadedModel(
        pipeline, hashes, scale=partial(limits.render_size, side=side, multiple=pipeline.canvas_multiple)
    )


def settings_provider(
    settings: ModelSettings, unet_config: InstanceUNetConfig | None = None, demo_dir: Path = DEMO_MODEL_DIR
) -> ModelProvider:
    """A provider for "demo", "sd15" and the configured fine-tuned bases (raising ModelFilesError that says
    what to do). A base renders with the configured adapter; its name leads the render's model hashes."""

    def provide(model_id: str) -> LoadedModel:
        if model_id == DEMO:
            demo = load_demo_model(demo_dir)
            demo.loras = LoraLibrary(settings.loras)  # LoRAs made for its small UNet; SD1.5's do not fit it
            return demo
        base = _base_path(settings, model_id)
        if settings.adapter is None:
            raise ModelFilesError(
                "no InstanceDiffusion adapter is configured: convert the official checkpoint with "
                "`main.py models convert instancediffusion_sd15.pth`"
            )
        try:
            device = select_device(settings.device)
            dtype = select_dtype(device, settings.dtype)
        except ValueError as exc:
            raise ModelFilesError(str(exc)) from exc
        loaded = load_components(base, unet_config=unet_config, adapter=settings.adapter, device=device, dtype=dtype)
        # The base's own training schedule (its scheduler config); each render picks its sampler on it.
        scheduler = PNDMScheduler.from_config(loaded.scheduler_config)
        pipeline = InstanceDiffusionPipeline(
            loaded.vae, loaded.text_encoder, loaded.tokenizer, loaded.unet, scheduler=scheduler
        )
        # Which base, then the SHA-256 of each of its files and of the adapter.
        return LoadedModel(
            pipeline,
            {"base": model_id, **loaded.hashes},
            loras=LoraLibrary(settings.loras),
            low_memory=settings.low_memory,
        )

    return provide


def _base_path(settings: ModelSettings, model_id: str) -> Path:
    """Where the SD1.5-architecture base `model_id` is: "sd15" or one of the configured fine-tuned bases."""
    if model_id == SD15:
        if settings.sd15 is None:
            raise ModelFilesError(
                "Stable Diffusion 1.5 is not configured: Settings -> Models, or `main.py models set --sd15 PATH`"
            )
        return settings.sd15
    base = settings.bases.get(model_id)
    if base is None:
        raise ModelFilesError(unknown_model_message(model_id, settings))
    return base
